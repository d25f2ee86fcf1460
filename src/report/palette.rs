//! Colour-blind-safe palettes: viridis for magnitudes, a purple-orange diverging map for signed
//! differences, Okabe-Ito for categories.

use plotters::style::RGBColor;
use plotters::style::colors::colormaps::{ColorMap, DerivedColorMap, ViridisRGB};

/// The Okabe-Ito categorical palette (distinguishable under the common colour-vision
/// deficiencies), black last.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0xF0, 0xE4, 0x42), // yellow
    RGBColor(0x00, 0x00, 0x00), // black
];

/// Category colour `i` (cycles through [`OKABE_ITO`]).
pub fn category(i: usize) -> RGBColor {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// Viridis colour of `v` in `[0, 1]` (clamped).
pub fn viridis(v: f64) -> RGBColor {
    ViridisRGB.get_color_normalized(v.clamp(0.0, 1.0) as f32, 0.0, 1.0)
}

/// Diverging colour of `v` in `[-1, 1]` (clamped): purple below zero, white at zero, orange
/// above (ColorBrewer PuOr, safe for red-green colour blindness).
pub fn diverging(v: f64) -> RGBColor {
    let map = DerivedColorMap::new(&[
        RGBColor(0x54, 0x27, 0x88),
        RGBColor(0x99, 0x8E, 0xC3),
        RGBColor(0xD8, 0xDA, 0xEB),
        RGBColor(0xF7, 0xF7, 0xF7),
        RGBColor(0xFE, 0xE0, 0xB6),
        RGBColor(0xF1, 0xA3, 0x40),
        RGBColor(0xB3, 0x58, 0x06),
    ]);
    map.get_color_normalized(v.clamp(-1.0, 1.0) as f32, -1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_middle_of_the_maps() {
        assert_eq!(diverging(0.0), RGBColor(0xF7, 0xF7, 0xF7));
        assert_eq!(diverging(-5.0), RGBColor(0x54, 0x27, 0x88));
        assert_eq!(diverging(1.0), RGBColor(0xB3, 0x58, 0x06));
        // Viridis runs from dark purple to yellow: the ends differ in lightness.
        let (lo, hi) = (viridis(0.0), viridis(1.0));
        assert!(lo.0 < 0x50 && lo.2 > 0x40, "{lo:?}");
        assert!(hi.0 > 0xE0 && hi.1 > 0xD0, "{hi:?}");
        assert_ne!(category(0), category(7));
        assert_eq!(category(8), category(0));
    }
}
