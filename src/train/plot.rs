//! Confusion-matrix plot (plotters, PNG).

use std::path::Path;

use plotters::prelude::*;

use crate::model::Metrics;
use crate::{Error, Result};

/// Draws a row-normalised confusion matrix with counts.
pub fn confusion_png(path: &Path, m: &Metrics, title: &str) -> Result<()> {
    crate::font::register();
    let err = |e: String| Error::Format {
        path: path.to_path_buf(),
        reason: format!("cannot draw plot: {e}"),
    };
    let n = m.labels.len();
    let root = BitMapBackend::new(path, (760, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(0..n, 0..n)
        .map_err(|e| err(e.to_string()))?;
    let labels = m.labels.clone();
    let l2 = labels.clone();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&move |i| labels.get(*i).cloned().unwrap_or_default())
        .y_label_formatter(&move |i| l2.get(n - 1 - (*i).min(n - 1)).cloned().unwrap_or_default())
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for t in 0..n {
        let total: usize = m.confusion[t].iter().sum();
        for p in 0..n {
            let c = m.confusion[t][p];
            let frac = if total > 0 {
                c as f64 / total as f64
            } else {
                0.0
            };
            let shade = (255.0 * (1.0 - frac)) as u8;
            let y = n - 1 - t;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(p, y), (p + 1, y + 1)],
                    RGBColor(shade, shade, 255).filled(),
                )))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{c}"),
                    (p, y + 1),
                    ("sans-serif", 16)
                        .into_font()
                        .color(if frac > 0.5 { &WHITE } else { &BLACK }),
                )))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
