//! Session export for clinicians: every window as CSV and JSON (time, probabilities, top
//! label, speech flag) and a one-page PNG report (timeline, emotion distribution, model
//! and its measured accuracy, date, session length).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::labels::{LABELS, LABEL_RGB, N_LABELS};
use crate::util::write_atomic;
use crate::{Error, Result};

/// One analysed window of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub t_start: f64,
    pub t_end: f64,
    /// Smoothed, calibrated probabilities in label order.
    pub probs: [f32; N_LABELS],
    /// Top label; `None` where the voice activity detector found no speech.
    pub top: Option<String>,
    pub speech: bool,
}

/// What the report says about where the numbers came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionMeta {
    /// Model name and its held-out accuracy, as on the model card.
    pub model: String,
    pub source: String,
    /// Local date and time of the export.
    pub date: String,
    /// Where the model ran (`CPU`, `CUDA:0`, `CPU (after CUDA:0 failed)`); empty when the
    /// session did not record it.
    #[serde(default)]
    pub compute: String,
}

#[derive(Serialize)]
struct SessionJson<'a> {
    meta: &'a SessionMeta,
    labels: [&'static str; N_LABELS],
    duration_s: f64,
    windows: usize,
    speech_windows: usize,
    /// Share of speech windows whose top label is each emotion.
    distribution: Vec<(String, f64)>,
    /// The most frequent top label over speech windows; `null` when no window had speech.
    dominant: Option<&'static str>,
    rows: &'a [SessionRow],
}

/// The most frequent top label over speech windows, `None` without speech.
fn dominant(d: &[f64; N_LABELS]) -> Option<&'static str> {
    let k = crate::labels::argmax(&d.map(|x| x as f32));
    (d[k] > 0.0).then_some(LABELS[k])
}

fn distribution(rows: &[SessionRow]) -> [f64; N_LABELS] {
    let mut n = [0.0; N_LABELS];
    let mut total = 0.0;
    for r in rows {
        if let Some(k) = r.top.as_deref().and_then(crate::labels::label_index) {
            n[k] += 1.0;
            total += 1.0;
        }
    }
    if total > 0.0 {
        for x in &mut n {
            *x /= total;
        }
    }
    n
}

/// Where the model of a headless session ran, from its summary line (`None` for a session
/// cut short before it, or written before the summary named it).
pub fn session_compute(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        Some(v.get("summary")?.get("compute")?.as_str()?.to_string())
    })
}

/// Reads the JSON lines of `emoscope monitor --headless` (or a session folder's
/// `session.jsonl`); the summary line is skipped, and so is a last line cut short without
/// its newline (a recorder killed mid-write leaves one).
pub fn read_jsonl(path: &Path) -> Result<Vec<SessionRow>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let cut = (!text.ends_with('\n')).then(|| text.lines().count().saturating_sub(1));
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if cut == Some(i) => break,
            Err(e) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    reason: format!("line {}: not JSON ({e})", i + 1),
                })
            }
        };
        if v.get("summary").is_some() {
            continue;
        }
        let bad = |what: &str| Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "line {}: not a window line of `emoscope monitor` ({what})",
                i + 1
            ),
        };
        let num = |k: &str| v.get(k).and_then(|x| x.as_f64()).ok_or_else(|| bad(k));
        // probs: {"angry": 0.7, ...} as the monitor writes it, or an array in label order.
        let mut probs = [0.0f32; N_LABELS];
        match v.get("probs") {
            Some(serde_json::Value::Object(m)) => {
                for (k, l) in LABELS.iter().enumerate() {
                    probs[k] = m.get(*l).and_then(|x| x.as_f64()).ok_or_else(|| bad(l))? as f32;
                }
            }
            Some(serde_json::Value::Array(a)) if a.len() == N_LABELS => {
                for (k, x) in a.iter().enumerate() {
                    probs[k] = x.as_f64().ok_or_else(|| bad("probs"))? as f32;
                }
            }
            _ => return Err(bad("probs")),
        }
        let top = match v.get("top") {
            Some(serde_json::Value::String(t)) if crate::labels::label_index(t).is_some() => {
                Some(t.clone())
            }
            Some(serde_json::Value::Null) | None => None,
            Some(other) => return Err(bad(&format!("top {other}"))),
        };
        let row = SessionRow {
            t_start: num("t_start")?,
            t_end: num("t_end")?,
            probs,
            top,
            speech: v
                .get("speech")
                .and_then(|x| x.as_bool())
                .ok_or_else(|| bad("speech"))?,
        };
        rows.push(row);
    }
    Ok(rows)
}

/// Writes `session.csv`, `session.json` and `report.png` into `dir`; returns their paths.
pub fn export_session(dir: &Path, meta: &SessionMeta, rows: &[SessionRow]) -> Result<[PathBuf; 3]> {
    crate::util::create_dir_all(dir)?;
    let csv = dir.join("session.csv");
    let mut text = format!("t_start,t_end,speech,top,{}\n", LABELS.join(","));
    for r in rows {
        text.push_str(&format!(
            "{:.2},{:.2},{},{},{}\n",
            r.t_start,
            r.t_end,
            r.speech,
            r.top.as_deref().unwrap_or(""),
            r.probs
                .iter()
                .map(|p| format!("{p:.4}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    write_atomic(&csv, text.as_bytes())?;
    let json = dir.join("session.json");
    let d = distribution(rows);
    let body = SessionJson {
        meta,
        labels: LABELS,
        duration_s: rows.last().map_or(0.0, |r| r.t_end),
        windows: rows.len(),
        speech_windows: rows.iter().filter(|r| r.top.is_some()).count(),
        distribution: LABELS
            .iter()
            .zip(d)
            .map(|(l, x)| (l.to_string(), x))
            .collect(),
        dominant: dominant(&d),
        rows,
    };
    write_atomic(
        &json,
        serde_json::to_string_pretty(&body)
            .expect("serialises")
            .as_bytes(),
    )?;
    let png = dir.join("report.png");
    report_png(&png, meta, rows)?;
    Ok([csv, json, png])
}

fn rgb(k: usize) -> RGBColor {
    let (r, g, b) = LABEL_RGB[k];
    RGBColor(r, g, b)
}

/// The one-page report.
pub fn report_png(path: &Path, meta: &SessionMeta, rows: &[SessionRow]) -> Result<()> {
    crate::font::register();
    let err = |e: String| Error::Format {
        path: path.to_path_buf(),
        reason: format!("cannot draw the report: {e}"),
    };
    // Drawn in memory and written atomically, so a full disk never leaves half a PNG.
    let (w, h) = (1100u32, 845u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (head, rest) = root.split_vertically(175);
        let (top, bottom) = rest.split_vertically(380);
        let duration = rows.last().map_or(0.0, |r| r.t_end);
        let speech = rows.iter().filter(|r| r.top.is_some()).count();
        let lines = [
            ("emoscope session report".to_string(), 26),
            (format!("date: {}    session length: {:.0} min {:.0} s    windows: {} ({} with speech)", meta.date, (duration / 60.0).floor(), duration % 60.0, rows.len(), speech), 16),
            (match dominant(&distribution(rows)) {
                Some(l) => format!("most frequent emotion over the speech windows: {l}"),
                None => "no speech: the voice activity detector heard no speech in any window, so no emotion is named".to_string(),
            }, 16),
            (format!("model: {}    ran on: {}", meta.model, if meta.compute.is_empty() { "not recorded" } else { &meta.compute }), 16),
            (format!("source: {}", meta.source), 16),
            ("Probabilities from a speech emotion model, not a diagnosis. Accuracy was measured on actors' speech; on other voices it is lower.".to_string(), 14),
        ];
        let mut y = 12;
        for (text, size) in lines {
            head.draw(&Text::new(
                text,
                (24, y),
                ("sans-serif", size).into_font().color(&BLACK),
            ))
            .map_err(|e| err(e.to_string()))?;
            y += size + 10;
        }
        let t_max = duration.max(1.0);
        let mut chart = ChartBuilder::on(&top)
            .caption(
                "smoothed probability per emotion over time (grey: no speech)",
                ("sans-serif", 16),
            )
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_max, 0.0f64..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("probability")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(rows.iter().filter(|r| !r.speech).map(|r| {
                Rectangle::new(
                    [(r.t_end - 0.5, 0.0), (r.t_end, 1.0)],
                    RGBColor(225, 225, 225).filled(),
                )
            }))
            .map_err(|e| err(e.to_string()))?;
        for (k, name) in LABELS.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(
                    rows.iter().map(|r| (r.t_end, r.probs[k] as f64)),
                    rgb(k).stroke_width(2),
                ))
                .map_err(|e| err(e.to_string()))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], rgb(k).stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let d = distribution(rows);
        let mut bars = ChartBuilder::on(&bottom)
            .caption(
                "dominant emotion: share of speech windows",
                ("sans-serif", 16),
            )
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d((0..N_LABELS).into_segmented(), 0.0f64..100.0)
            .map_err(|e| err(e.to_string()))?;
        bars.configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .y_desc("% of speech windows")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(k) | SegmentValue::Exact(k) if *k < N_LABELS => {
                    LABELS[*k].to_string()
                }
                _ => String::new(),
            })
            .draw()
            .map_err(|e| err(e.to_string()))?;
        bars.draw_series((0..N_LABELS).map(|k| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(k), 0.0),
                    (SegmentValue::Exact(k + 1), d[k] * 100.0),
                ],
                rgb(k).filled(),
            );
            r.set_margin(0, 0, 12, 12);
            r
        }))
        .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let img = image_png(&buf, w, h).map_err(err)?;
    write_atomic(path, &img)
}

/// PNG-encodes an RGB buffer.
fn image_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(enc, rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<SessionRow> {
        (0..40)
            .map(|i| {
                let mut p = [0.05f32; N_LABELS];
                let k = if i < 25 { 4 } else { 3 };
                p[k] = 0.65;
                let speech = i % 10 != 9;
                SessionRow {
                    t_start: i as f64 * 0.5,
                    t_end: i as f64 * 0.5 + 3.0,
                    probs: p,
                    top: speech.then(|| LABELS[k].to_string()),
                    speech,
                }
            })
            .collect()
    }

    #[test]
    fn export_writes_csv_json_and_a_report_with_the_distribution() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SessionMeta {
            model: "emocnn - 65.8 % on held-out speakers".into(),
            compute: "CPU".into(),
            source: "test".into(),
            date: "2026-11-25 10:00".into(),
        };
        let r = rows();
        let [csv, json, png] = export_session(dir.path(), &meta, &r).unwrap();
        let text = std::fs::read_to_string(csv).unwrap();
        assert!(text.starts_with("t_start,t_end,speech,top,neutral,calm,"));
        assert_eq!(text.lines().count(), 41);
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("0.00,3.00,true,angry,0.0500"));
        assert!(
            text.lines().nth(10).unwrap().contains(",false,,"),
            "no-speech window has no top label"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(v["windows"], 40);
        assert_eq!(v["speech_windows"], 36);
        // 25 angry windows minus 3 silent (9, 19), ... : 23 angry, 13 sad of 36.
        let angry = v["distribution"][4][1].as_f64().unwrap();
        assert!((angry - 23.0 / 36.0).abs() < 1e-9, "{angry}");
        let img = image::open(png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1100, 845));
        // The angry bar's colour appears in the distribution chart (lower part).
        let (r, g, b) = LABEL_RGB[4];
        let hits = img
            .enumerate_pixels()
            .filter(|(_, y, p)| *y > 560 && p.0 == [r, g, b])
            .count();
        assert!(hits > 2000, "angry bar pixels: {hits}");
    }

    #[test]
    fn jsonl_of_the_monitor_reads_back_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        let line = r#"{"t_start":0.0,"t_end":3.0,"probs":[0.1,0.1,0.1,0.1,0.3,0.1,0.1,0.1],"top":"angry","speech":true,"latency_ms":3.0}"#;
        let monitor = r#"{"t_start":0.5,"t_end":3.5,"probs":{"angry":0.7691,"calm":0.001,"disgust":0.0636,"fearful":0.0178,"happy":0.1095,"neutral":0.0015,"sad":0.0144,"surprised":0.023},"top":null,"speech":false}"#;
        std::fs::write(&p, format!("{line}\n{monitor}\n{{\"summary\":{{}}}}\n")).unwrap();
        let rows = read_jsonl(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].top.as_deref(), Some("angry"));
        assert_eq!(rows[1].probs[4], 0.7691);
        assert_eq!(rows[1].probs[0], 0.0015);
        assert_eq!(rows[1].top, None);
        std::fs::write(&p, "{\"t\":1}\n").unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("s.jsonl") && e.contains("line 1"), "{e}");
        // A last line cut short by a crash is skipped; a bad line before it is not.
        std::fs::write(&p, format!("{line}\n{}", &monitor[..40])).unwrap();
        assert_eq!(read_jsonl(&p).unwrap().len(), 1);
        std::fs::write(&p, format!("{}\n{line}\n", &monitor[..40])).unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: not JSON"), "{e}");
    }
}
