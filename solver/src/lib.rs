//! moeplan-solver: the pure optimisation core (placement problems in, plans and bounds out; no
//! I/O, no clocks: time limits come in as numbers and a [`Control`] from the caller).
//!
//! ```
//! use moeplan_solver::eplb::rebalance_experts;
//! // EPLB's README example, first layer: 12 experts, 16 replicas, 4 groups, 2 nodes, 8 GPUs.
//! let w = [90., 132., 40., 61., 104., 165., 39., 4., 73., 56., 183., 86.];
//! let phy2log = rebalance_experts(&w, 16, 4, 2, 8);
//! assert_eq!(phy2log, [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]);
//! ```

pub mod affinity;
pub mod baseline;
pub mod bound;
pub mod budget;
pub mod chain;
pub mod control;
pub mod eplb;
pub mod history;
pub mod ilp;
pub mod joint;
pub mod kl;
pub mod layer;
pub mod layer_time;
pub mod methods;
pub mod metrics;
pub mod mip;
pub mod objective;
pub mod plan;
pub mod problem;
pub mod relax;
pub mod replicate;

pub use budget::{BudgetOptions, Replanned, Swap, replan, replan_recent};
pub use control::{Control, ProgressEvent, Unlimited};
pub use history::ReplanHistory;
pub use ilp::{IlpOptions, SolveReport};
pub use layer_time::{LayerTime, TimeModel, layer_time};
pub use methods::{Method, MethodOptions, Placed, place};
pub use metrics::{Metrics, evaluate};
pub use plan::{Plan, PlanError};
pub use problem::{Problem, ProblemError, Topology, Weights, Workload};
