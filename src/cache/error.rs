//! Errors of the cache core: a bad configuration or a request out of range.

/// An error from the cache core. Nothing here leaves the cache in a changed state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The cache shape or budget is unusable.
    #[error("cache config: {0}")]
    Config(String),
    /// A layer index is out of range.
    #[error("layer {layer} out of range (0..{layers})")]
    Layer { layer: usize, layers: usize },
    /// An expert id is out of range.
    #[error("expert {expert} of layer {layer} out of range (0..{experts})")]
    Expert {
        layer: usize,
        expert: u16,
        experts: usize,
    },
    /// A policy was built for a different number of keys than the cache has.
    #[error("policy {name} covers {got} keys, the cache has {want}")]
    PolicySize {
        name: String,
        got: usize,
        want: usize,
    },
}
