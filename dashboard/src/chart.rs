//! Charts drawn on the server with plotters, as PNG or SVG.

use plotters::coord::Shift;
use plotters::prelude::*;
use teiten_store::time::DAY;

use crate::data::GraphData;
use crate::error::{Error, Result};
use crate::params::iso;

/// Chart width in pixels.
pub const WIDTH: u32 = 1000;
/// Chart height in pixels.
pub const HEIGHT: u32 = 480;

/// The font family every chart text uses (registered by [`load_font`]).
const FAMILY: &str = "sans-serif";

/// An image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// SVG.
    Svg,
}

impl Format {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// Reads a TrueType font and registers it for all chart text. Call once at start-up.
pub fn load_font(path: &std::path::Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::Font {
        path: path.display().to_string(),
        message: format!("{e} (Debian: apt-get install fonts-dejavu-core)"),
    })?;
    // The font lives as long as the process (plotters keeps a &'static).
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| Error::Font {
        path: path.display().to_string(),
        message: "not a TrueType/OpenType font".into(),
    })
}

/// Line colours: distinct, readable on white.
const COLOURS: [RGBColor; 21] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
    RGBColor(140, 109, 49),
    RGBColor(132, 60, 57),
    RGBColor(123, 65, 115),
    RGBColor(82, 84, 163),
    RGBColor(181, 207, 107),
    RGBColor(231, 186, 82),
    RGBColor(214, 97, 107),
    RGBColor(206, 109, 189),
    RGBColor(0, 0, 0),
];

/// The colour of series `i` (also used by the HTML legend swatches).
pub fn colour(i: usize) -> (u8, u8, u8) {
    let c = COLOURS[i % COLOURS.len()];
    (c.0, c.1, c.2)
}

/// Draws a graph.
pub fn render(data: &GraphData, format: Format) -> Result<Vec<u8>> {
    let fail = |message: String| Error::Chart {
        what: data.graph.to_owned(),
        message,
    };
    match format {
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, data).map_err(fail)?;
            }
            Ok(text.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
                draw(&root, data).map_err(fail)?;
            }
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut w = enc.write_header().map_err(|e| fail(e.to_string()))?;
            w.write_image_data(&rgb).map_err(|e| fail(e.to_string()))?;
            w.finish().map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
    }
}

/// `s[a..b]`, or all of `s` when it is shorter (never panics).
fn cut(s: &str, a: usize, b: usize) -> &str {
    s.get(a..b).unwrap_or(s)
}

/// Short number labels: 1.2k, 3.4M.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &GraphData) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let ymax = data
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let (x0, x1) = (data.from, data.to.max(data.from + 1));
    let day = data.to - data.from <= 2 * DAY;
    let (from, to) = (
        cut(&iso(data.from), 0, 16).replace('T', " "),
        cut(&iso(data.to), 0, 16).replace('T', " "),
    );
    // Public charts (always over all sensors) name their grain and delay instead.
    let (caption, size) = match &data.public {
        Some(p) => (
            format!(
                "{} — {}, {from} to {to} UTC — public: {}-s buckets, delay: {}",
                data.title,
                data.proto,
                data.step.max(p.grain_secs),
                if p.delay.starts_with("whole") {
                    "whole UTC days"
                } else {
                    p.delay.as_str()
                }
            ),
            14,
        ),
        None => (
            format!(
                "{} — {}, {}, {from} to {to} UTC",
                data.title, data.proto, data.sensors
            ),
            17,
        ),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FAMILY, size))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, 0f64..ymax)
        .map_err(e)?;
    let fmt_x = move |t: &i64| {
        let s = iso(*t);
        if day {
            format!("{} {}", cut(&s, 5, 10), cut(&s, 11, 16))
        } else {
            cut(&s, 0, 10).to_owned()
        }
    };
    let fmt_y = |v: &f64| short(*v);
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .y_desc(data.unit.as_str())
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    for (i, s) in data.series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let points = data.times.iter().copied().zip(s.values.iter().copied());
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(e)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    if !data.published {
        let (n, k) = data
            .public
            .as_ref()
            .map_or((0, 0), |p| (p.min_sources, p.min_sensors));
        let grey = (FAMILY, 18).into_font().color(&RGBColor(120, 120, 120));
        for (i, line) in [
            "Not published for this period:".to_owned(),
            format!("public per-port data needs {n} sources on {k} sensors"),
        ]
        .iter()
        .enumerate()
        {
            root.draw_text(
                line,
                &grey,
                (WIDTH as i32 / 2 - 220, HEIGHT as i32 / 2 + 26 * i as i32),
            )
            .map_err(e)?;
        }
    } else if data.series.is_empty() {
        root.draw_text(
            "No packets for this selection",
            &(FAMILY, 20).into_font().color(&RGBColor(120, 120, 120)),
            (WIDTH as i32 / 2 - 130, HEIGHT as i32 / 2),
        )
        .map_err(e)?;
    } else {
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// The series' legend box, the same on every chart.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 12))
        .draw()
        .map_err(|x| x.to_string())
}

/// One stack of a bar chart: its label, RGB colour and counts per bar.
pub type Stack = (String, (u8, u8, u8), Vec<u64>);

/// Bars of counts per month, stacked: `series` are (label, RGB colour, counts per month).
/// An SVG of `WIDTH` × `height` for a page to embed.
pub fn stacked_bars_svg(
    title: &str,
    months: &[String],
    series: &[Stack],
    height: u32,
) -> Result<String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        draw_bars(&root, title, months, series).map_err(|message| Error::Chart {
            what: title.to_owned(),
            message,
        })?;
    }
    Ok(text)
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    months: &[String],
    series: &[Stack],
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let n = months.len().max(1);
    let stacked: Vec<u64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.2.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let ymax = stacked.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
        .map_err(e)?;
    let label = |x: &f64| {
        let i = x.floor() as usize;
        if (x - x.floor() - 0.5).abs() < 1e-6 {
            months.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&label)
        .y_labels(6)
        // Counts: whole numbers only.
        .y_label_formatter(&|v: &f64| {
            if (v - v.round()).abs() < 1e-9 {
                short(*v)
            } else {
                String::new()
            }
        })
        .y_desc("reports")
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    let mut base = vec![0u64; n];
    for (name, (r, g, b), counts) in series {
        let c = RGBColor(*r, *g, *b);
        let bars: Vec<Rectangle<(f64, f64)>> = (0..n)
            .filter_map(|i| {
                let v = counts.get(i).copied().unwrap_or(0);
                let y0 = base[i];
                base[i] += v;
                (v > 0).then(|| {
                    Rectangle::new(
                        [
                            (i as f64 + 0.15, y0 as f64),
                            (i as f64 + 0.85, (y0 + v) as f64),
                        ],
                        c.filled(),
                    )
                })
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    if stacked.iter().all(|v| *v == 0) {
        root.draw_text(
            "No reports in this period",
            &(FAMILY, 18).into_font().color(&RGBColor(120, 120, 120)),
            (WIDTH as i32 / 2 - 110, 100),
        )
        .map_err(e)?;
    } else {
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Series;

    fn data(series: usize) -> GraphData {
        GraphData {
            graph: "ports",
            title: "Top destination ports".into(),
            unit: "packets per sensor per hour".into(),
            from: 1_763_683_200,
            to: 1_763_683_200 + 86_400,
            step: 3600,
            mode: "avg",
            proto: "tcp",
            sensors: "all sensors".into(),
            port: None,
            published: true,
            public: None,
            networks: None,
            times: (0..24).map(|i| 1_763_683_200 + i * 3600).collect(),
            series: (0..series)
                .map(|s| Series {
                    name: format!("{}", 20 + s),
                    total: Some(1.0),
                    values: (0..24).map(|i| ((i * (s + 1)) % 17) as f64).collect(),
                })
                .collect(),
        }
    }

    fn font() {
        load_font(std::path::Path::new(
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        ))
        .expect("fonts-dejavu-core is installed");
    }

    #[test]
    fn png_and_svg() {
        font();
        let png = render(&data(3), Format::Png).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = String::from_utf8(render(&data(3), Format::Svg).unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(svg.contains("Top destination ports"));
        assert!(svg.contains("\n22\n</text>"), "legend names the ports");
        assert!(svg.contains("polyline"));
        let empty = String::from_utf8(render(&data(0), Format::Svg).unwrap()).unwrap();
        assert!(empty.contains("No packets for this selection"));
    }

    #[test]
    fn stacked_bars() {
        font();
        let months = vec!["2026-11".to_owned(), "2026-12".to_owned()];
        let svg = stacked_bars_svg(
            "Colour",
            &months,
            &[
                ("green".into(), (0, 120, 0), vec![1, 0]),
                ("red".into(), (180, 0, 0), vec![0, 2]),
            ],
            300,
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("2026-12") && svg.contains("red"));
        // One bar each and a legend swatch.
        assert_eq!(svg.matches("fill=\"#B40000\"").count(), 2, "{svg}");
        assert_eq!(svg.matches("fill=\"#007800\"").count(), 2, "{svg}");
        let empty = stacked_bars_svg("Colour", &months, &[], 300).unwrap();
        assert!(empty.contains("No reports in this period"));
    }

    #[test]
    fn missing_font_is_a_clear_error() {
        let e = load_font(std::path::Path::new("/nonexistent.ttf")).unwrap_err();
        assert!(e.to_string().contains("fonts-dejavu-core"), "{e}");
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2.5e6), "2.5M");
        assert_eq!(short(0.25), "0.25");
    }
}
