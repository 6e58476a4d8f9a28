//! Charts as PNG and SVG, drawn with plotters and an embedded DejaVu Sans (so nothing depends on
//! system fonts or fontconfig). Each chart is a title, axis labels and a few named series; the
//! figures of `paths --plot`, `zoo --plot` and `train` are built from the library's numbers.

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

use crate::io::write_atomic;

pub mod figures;
pub mod heatmap;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The font is valid (it is the embedded DejaVu Sans); a failure here is a build error.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("DejaVuSans.ttf"),
        );
    });
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A line through the points.
    Line,
    /// Points only.
    Points,
    /// A line with points.
    LinePoints,
    /// A dashed-looking line (drawn thinner), for fits and references.
    Thin,
}

/// One named series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
    /// How to draw it.
    pub mark: Mark,
    /// Palette index (default: the series' position); series sharing one share a colour.
    pub colour: Option<usize>,
}

impl Series {
    /// A series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, mark: Mark) -> Self {
        Series {
            name: name.into(),
            points,
            mark,
            colour: None,
        }
    }

    /// The same series drawn in palette colour `i`. A series with an empty name gets no
    /// legend entry (e.g. a front drawn in its points' colour).
    pub fn colour(mut self, i: usize) -> Self {
        self.colour = Some(i);
        self
    }
}

/// A chart: title, axis labels, series.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The series.
    pub series: Vec<Series>,
}

const SIZE: (u32, u32) = (900, 560);

fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 7] = [
        RGBColor(0x44, 0x77, 0xaa),
        RGBColor(0xee, 0x66, 0x77),
        RGBColor(0x22, 0x88, 0x33),
        RGBColor(0xcc, 0xbb, 0x44),
        RGBColor(0x66, 0xcc, 0xee),
        RGBColor(0xaa, 0x33, 0x77),
        RGBColor(0x55, 0x55, 0x55),
    ];
    C[i % C.len()]
}

fn bounds(chart: &Chart) -> ((f64, f64), (f64, f64)) {
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let pad = |a: f64, b: f64, top: f64| {
        let d = if b > a { b - a } else { 10.0 };
        (a - 0.05 * d, b + top * d)
    };
    // Headroom above the highest point for the legend (drawn in the upper right).
    (pad(x0, x1, 0.05), pad(y0, y1, 0.22))
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ((x0, x1), (y0, y1)) = bounds(chart);
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Integral ticks print without a trailing ".0".
    let fmt = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{}", v.round() as i64)
        } else {
            format!("{v:.2}")
        }
    };
    c.configure_mesh()
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = palette(s.colour.unwrap_or(i));
        let pts = s.points.clone();
        let anno = match s.mark {
            Mark::Line | Mark::LinePoints => c
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            Mark::Thin => c
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(1)))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            Mark::Points => c
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        if !s.name.is_empty() {
            anno.label(s.name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        }
        if s.mark == Mark::LinePoints {
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Write `dir/stem.png` and `dir/stem.svg`, each atomically.
pub fn save(chart: &Chart, dir: &Path, stem: &str) -> Result<()> {
    write_both(
        dir,
        stem,
        SIZE,
        |root| draw(root, chart),
        |root| draw(root, chart),
    )
}

/// Write `dir/stem.svg` and `dir/stem.png` of `size` pixels, each atomically, drawn by
/// `svg` and `png` (the same drawing on the two backends).
pub(crate) fn write_both(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    svg: impl FnOnce(DrawingArea<SVGBackend, Shift>) -> Result<()>,
    png: impl FnOnce(DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut text = String::new();
    svg(SVGBackend::with_string(&mut text, size).into_drawing_area())?;
    write_atomic(&dir.join(format!("{stem}.svg")), text.as_bytes())?;
    // The PNG encoder picks its format from the file name, so the temp name keeps ".png".
    let out = dir.join(format!("{stem}.png"));
    let tmp = crate::io::unique_temp_path(&out, ".tmp.png");
    // The same drawing has just succeeded on the SVG backend, so a failure here is the PNG
    // file's write (a full disk, a folder removed): an I/O error, exit status 3.
    let drawn = png(BitMapBackend::new(&tmp, size).into_drawing_area())
        .map_err(|e| anyhow::Error::new(std::io::Error::other(format!("{e:#}"))))
        .and_then(|()| std::fs::rename(&tmp, &out).map_err(anyhow::Error::from));
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", out.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The temp files left in `dir` (hidden names containing ".tmp").
    fn hidden_temps(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with('.') && n.contains(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_failed_png_write_is_an_io_error_of_one_line_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("sparsenet-plot-err-{}", std::process::id()));
        let err = write_both(
            &dir,
            "f",
            (10, 10),
            |_| Ok(()),
            |_| {
                Err(anyhow::anyhow!(
                    "Drawing backend error: No space left on device"
                ))
            },
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_status(&err), crate::error::EXIT_IO);
        let msg = format!("{err:#}");
        assert!(
            !msg.contains('\n') && !msg.contains("BackendError"),
            "{msg}"
        );
        assert!(
            msg.contains("f.png") && msg.contains("No space left"),
            "{msg}"
        );
        assert_eq!(hidden_temps(&dir), Vec::<String>::new());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("sparsenet-plot-{}", std::process::id()));
        let chart = Chart {
            title: "Test chart".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                Series::new(
                    "line",
                    vec![(0.0, 0.0), (1.0, 2.0), (2.0, 1.0)],
                    Mark::LinePoints,
                ),
                Series::new("points", vec![(0.5, 1.5)], Mark::Points),
            ],
        };
        save(&chart, &dir, "t").unwrap();
        let png = std::fs::read(dir.join("t.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("t.svg")).unwrap();
        assert!(svg.contains("Test chart") && svg.contains("points"));
        assert_eq!(hidden_temps(&dir), Vec::<String>::new());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
