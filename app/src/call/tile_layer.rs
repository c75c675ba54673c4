//! Which simulcast layer fills a tile: pure, so that it is tested natively.

use confab_protocol::VideoLayer;

/// The layer that fills a tile `width` device pixels wide when the full layer is `full` pixels
/// wide: the smallest of the quarter, half and whole width (the publisher's simulcast scales)
/// that is at least as wide as the tile; nothing for a tile of no width.
pub fn layer_for(width: f64, full: f64) -> VideoLayer {
    if width <= 0.0 || width.is_nan() {
        VideoLayer::Off
    } else if width <= full / 4.0 {
        VideoLayer::Low
    } else if width <= full / 2.0 {
        VideoLayer::Medium
    } else {
        VideoLayer::High
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_gets_the_smallest_layer_that_fills_it() {
        assert_eq!(layer_for(0.0, 640.0), VideoLayer::Off);
        assert_eq!(layer_for(-3.0, 640.0), VideoLayer::Off);
        assert_eq!(layer_for(f64::NAN, 640.0), VideoLayer::Off);
        assert_eq!(layer_for(120.0, 640.0), VideoLayer::Low);
        assert_eq!(layer_for(160.0, 640.0), VideoLayer::Low);
        assert_eq!(layer_for(161.0, 640.0), VideoLayer::Medium);
        assert_eq!(layer_for(320.0, 640.0), VideoLayer::Medium);
        assert_eq!(layer_for(321.0, 640.0), VideoLayer::High);
        assert_eq!(layer_for(3840.0, 640.0), VideoLayer::High);
        assert_eq!(layer_for(320.0, 1280.0), VideoLayer::Low);
    }
}
