//! Heat maps: one panel per matrix, side by side, with one colour scale (viridis, 0 to 1);
//! absent entries are left blank.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::Path;

use super::write_both;

/// One panel: a title and a matrix `m[row][col]` of values in `[0, 1]` (`None` = absent).
#[derive(Clone, Debug)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// Rows of values.
    pub matrix: Vec<Vec<Option<f64>>>,
}

/// What the axes and the scale say.
#[derive(Clone, Debug)]
pub struct Labels {
    /// Figure title.
    pub title: String,
    /// Column axis (e.g. "target layer ℓ").
    pub x: String,
    /// Row axis (e.g. "source s").
    pub y: String,
    /// Colour scale (e.g. "mean |w| / block max").
    pub scale: String,
    /// First column's number (columns are numbered from it).
    pub first_col: usize,
}

fn e<E: std::fmt::Display>(x: E) -> anyhow::Error {
    anyhow!("{x}")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[Panel],
    l: &Labels,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(&l.title, ("sans-serif", 22)).map_err(e)?;
    let (w, _) = root.dim_in_pixel();
    let (maps, bar) = root.split_horizontally(w.saturating_sub(110));
    for (area, p) in maps
        .split_evenly((1, panels.len().max(1)))
        .into_iter()
        .zip(panels)
    {
        let rows = p.matrix.len();
        let cols = p.matrix.first().map_or(0, |r| r.len());
        let x0 = l.first_col as f64 - 0.5;
        let mut c = ChartBuilder::on(&area)
            .caption(&p.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(x0..x0 + cols as f64, -0.5..rows as f64 - 0.5)
            .map_err(e)?;
        c.configure_mesh()
            .disable_mesh()
            .x_desc(&l.x)
            .y_desc(&l.y)
            .x_label_formatter(&|v| format!("{}", v.round() as i64))
            .y_label_formatter(&|v| format!("{}", v.round() as i64))
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .draw()
            .map_err(e)?;
        let cells = p.matrix.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().filter_map(move |(col, v)| {
                v.map(|v| {
                    let x = x0 + col as f64;
                    Rectangle::new(
                        [(x, r as f64 - 0.5), (x + 1.0, r as f64 + 0.5)],
                        ViridisRGB.get_color(v.clamp(0.0, 1.0) as f32).filled(),
                    )
                })
            })
        });
        c.draw_series(cells).map_err(e)?;
    }
    // The colour scale.
    let mut c = ChartBuilder::on(&bar)
        .margin_top(40)
        .margin_bottom(50)
        .margin_right(10)
        .y_label_area_size(40)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(e)?;
    c.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(&l.scale)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    let steps = 64;
    c.draw_series((0..steps).map(|i| {
        let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            ViridisRGB.get_color(((a + b) / 2.0) as f32).filled(),
        )
    }))
    .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Write `dir/stem.png` and `.svg`: the panels side by side and the colour scale.
pub fn save(panels: &[Panel], labels: &Labels, dir: &Path, stem: &str) -> Result<()> {
    let size = (330 * panels.len().max(1) as u32 + 110, 420);
    write_both(
        dir,
        stem,
        size,
        |root| draw(root, panels, labels),
        |root| draw(root, panels, labels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_panels_and_scale() {
        let dir = std::env::temp_dir().join(format!("sparsenet-heat-{}", std::process::id()));
        let panels = vec![
            Panel {
                title: "block1".into(),
                matrix: vec![vec![Some(1.0), Some(0.2)], vec![None, Some(0.5)]],
            },
            Panel {
                title: "block2".into(),
                matrix: vec![vec![Some(0.0)]],
            },
        ];
        let labels = Labels {
            title: "Connection usage".into(),
            x: "layer".into(),
            y: "source".into(),
            scale: "mean |w| / max".into(),
            first_col: 1,
        };
        save(&panels, &labels, &dir, "h").unwrap();
        let svg = std::fs::read_to_string(dir.join("h.svg")).unwrap();
        assert!(svg.contains("block2") && svg.contains("Connection usage"));
        assert_eq!(&std::fs::read(dir.join("h.png")).unwrap()[1..4], b"PNG");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
