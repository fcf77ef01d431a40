//! The font of every drawn image (the session report, training plots): built in, so
//! drawing needs no system fonts. Live code and training both draw with it, so it lives
//! below both.

use plotters::style::FontStyle;

/// DejaVu Sans (assets/DejaVuSans.ttf, Bitstream Vera license).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the built-in font as "sans-serif" (once).
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}
