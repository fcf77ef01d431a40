//! The window's panels, each a function drawing one thing from plain data: waveform with
//! level meter, scrolling log-mel spectrogram, emotion bars, session timeline, status bar.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Ui, Vec2};

use crate::labels::LABELS;
use crate::pipeline::export::SessionRow;

/// One colour per emotion, in label order (crate::labels::LABEL_RGB).
pub const EMOTION_COLOURS: [Color32; 8] = {
    let mut c = [Color32::BLACK; 8];
    let mut i = 0;
    while i < 8 {
        let (r, g, b) = crate::labels::LABEL_RGB[i];
        c[i] = Color32::from_rgb(r, g, b);
        i += 1;
    }
    c
};

/// Colour of error messages.
pub const ERROR_COLOUR: Color32 = Color32::from_rgb(255, 120, 100);

/// A one-line status message: an error in [`ERROR_COLOUR`], else a success in green.
pub fn message(ui: &mut Ui, error: bool, text: &str) {
    ui.colored_label(
        if error {
            ERROR_COLOUR
        } else {
            Color32::LIGHT_GREEN
        },
        text,
    );
}

/// Magma-like perceptual colour for `x` in 0..=1.
pub fn magma(x: f32) -> Color32 {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.25, [81.0, 18.0, 124.0]),
        (0.5, [183.0, 55.0, 121.0]),
        (0.75, [252.0, 137.0, 97.0]),
        (1.0, [252.0, 253.0, 191.0]),
    ];
    let x = x.clamp(0.0, 1.0);
    let i = STOPS
        .iter()
        .rposition(|s| s.0 <= x)
        .unwrap_or(0)
        .min(STOPS.len() - 2);
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let t = (x - a.0) / (b.0 - a.0);
    let c = |k: usize| (a.1[k] + (b.1[k] - a.1[k]) * t) as u8;
    Color32::from_rgb(c(0), c(1), c(2))
}

/// Waveform of `samples` (the last `seconds`), with peak level in dBFS and a clipping
/// warning. The panel spans `span` samples; shorter input is drawn against its right edge
/// (a recording still filling its window), with silence before it.
pub fn waveform(ui: &mut Ui, samples: &[f32], span: usize, seconds: f32) {
    let (rect, resp) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), 110.0), Sense::hover());
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 4.0, Color32::from_gray(20));
    let w = rect.width().max(1.0) as usize;
    let span = span.max(samples.len());
    let offset = span - samples.len();
    if !samples.is_empty() {
        let per = (span as f32 / w as f32).max(1.0);
        let mid = rect.center().y;
        let h = rect.height() / 2.0 - 4.0;
        for x in 0..w {
            let a = ((x as f32 * per) as usize).saturating_sub(offset);
            let b = (((x + 1) as f32 * per) as usize)
                .saturating_sub(offset)
                .min(samples.len());
            if a >= b {
                continue;
            }
            let (lo, hi) = samples[a..b]
                .iter()
                .fold((0.0f32, 0.0f32), |(l, h), &s| (l.min(s), h.max(s)));
            let px = rect.left() + x as f32;
            p.line_segment(
                [
                    Pos2::new(px, mid - hi.min(1.0) * h),
                    Pos2::new(px, mid - lo.max(-1.0) * h),
                ],
                Stroke::new(1.0, Color32::from_rgb(90, 200, 120)),
            );
        }
    }
    let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let db = crate::audio::dbfs(peak);
    let clipping = peak >= 0.99;
    let label = format!(
        "waveform: last {seconds:.1} s   peak {db:.1} dBFS{}",
        if clipping {
            "   CLIPPING - lower the input gain"
        } else {
            ""
        }
    );
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &label));
    p.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        Align2::LEFT_TOP,
        label,
        FontId::proportional(13.0),
        if clipping {
            Color32::RED
        } else {
            Color32::LIGHT_GRAY
        },
    );
    // Level meter on the right edge.
    let meter = Rect::from_min_max(
        Pos2::new(rect.right() - 10.0, rect.top() + 4.0),
        Pos2::new(rect.right() - 4.0, rect.bottom() - 4.0),
    );
    p.rect_filled(meter, 1.0, Color32::from_gray(50));
    let frac = ((db + 60.0) / 60.0).clamp(0.0, 1.0);
    let fill = Rect::from_min_max(
        Pos2::new(meter.left(), meter.bottom() - meter.height() * frac),
        meter.right_bottom(),
    );
    p.rect_filled(
        fill,
        1.0,
        if clipping {
            Color32::RED
        } else if db > -12.0 {
            Color32::YELLOW
        } else {
            Color32::GREEN
        },
    );
}

/// The log-mel spectrogram with a frequency axis (Hz) and a time axis (s). `tex` is a ring
/// of columns whose oldest column starts at texture coordinate `u`.
pub fn spectrogram(ui: &mut Ui, tex: Option<(&egui::TextureHandle, f32)>, seconds: f32, fmax: f32) {
    let (rect, resp) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), 170.0), Sense::hover());
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 4.0, Color32::BLACK);
    let plot = Rect::from_min_max(
        rect.left_top() + Vec2::new(48.0, 2.0),
        rect.right_bottom() - Vec2::new(2.0, 16.0),
    );
    if let Some((t, u)) = tex {
        // Oldest columns (u..1) on the left, newest (0..u) on the right.
        let split = plot.left() + plot.width() * (1.0 - u);
        let left = Rect::from_min_max(plot.left_top(), Pos2::new(split, plot.bottom()));
        let right = Rect::from_min_max(Pos2::new(split, plot.top()), plot.right_bottom());
        let uv = |a: f32, b: f32| Rect::from_min_max(Pos2::new(a, 0.0), Pos2::new(b, 1.0));
        p.image(t.id(), left, uv(u, 1.0), Color32::WHITE);
        p.image(t.id(), right, uv(0.0, u), Color32::WHITE);
    }
    resp.widget_info(|| {
        egui::WidgetInfo::labeled(
            egui::Role::Label,
            true,
            format!(
                "log-mel spectrogram: last {seconds:.0} s, up to {fmax:.0} Hz{}",
                if tex.is_some() { "" } else { " (no audio yet)" }
            ),
        )
    });
    let font = FontId::proportional(11.0);
    for hz in [500.0f32, 1000.0, 2000.0, 4000.0, 7000.0] {
        if hz > fmax {
            continue;
        }
        let m = crate::dsp::hz_to_mel(hz as f64) / crate::dsp::hz_to_mel(fmax as f64);
        let y = plot.bottom() - plot.height() * m as f32;
        p.text(
            Pos2::new(rect.left() + 2.0, y),
            Align2::LEFT_CENTER,
            format!("{hz:.0} Hz"),
            font.clone(),
            Color32::LIGHT_GRAY,
        );
    }
    for k in 0..=seconds as i32 {
        let x = plot.right() - plot.width() * k as f32 / seconds;
        p.text(
            Pos2::new(x, rect.bottom() - 1.0),
            Align2::CENTER_BOTTOM,
            format!("-{k} s"),
            font.clone(),
            Color32::LIGHT_GRAY,
        );
    }
}

/// Eight probability bars; the top label highlighted, or "no speech".
pub fn emotion_bars(ui: &mut Ui, probs: Option<&[f32; 8]>, top: Option<usize>, speech: bool) {
    let heading = match (speech, top) {
        (true, Some(t)) => format!(
            "{}  {:.0} %",
            LABELS[t],
            probs.map_or(0.0, |p| p[t] * 100.0)
        ),
        (false, _) if probs.is_some() => "no speech".to_string(),
        _ => "waiting for the first window ...".to_string(),
    };
    ui.label(egui::RichText::new(heading).size(26.0).strong());
    for (i, label) in LABELS.iter().enumerate() {
        let v = probs.map_or(0.0, |p| p[i]);
        let (rect, resp) =
            ui.allocate_exact_size(Vec2::new(ui.available_width(), 22.0), Sense::hover());
        let p = ui.painter_at(rect);
        let bar = Rect::from_min_max(
            rect.left_top() + Vec2::new(90.0, 3.0),
            rect.right_bottom() - Vec2::new(50.0, 3.0),
        );
        p.rect_filled(bar, 3.0, Color32::from_gray(40));
        let mut fill = bar;
        fill.set_width(bar.width() * v);
        let highlighted = speech && top == Some(i);
        resp.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::ProgressIndicator,
                true,
                format!(
                    "{label} {:.0} %{}",
                    v * 100.0,
                    if highlighted { " (top)" } else { "" }
                ),
            )
        });
        let colour = if speech {
            EMOTION_COLOURS[i]
        } else {
            EMOTION_COLOURS[i].gamma_multiply(0.35)
        };
        p.rect_filled(fill, 3.0, colour);
        if highlighted {
            p.rect_stroke(
                bar,
                3.0,
                Stroke::new(2.0, Color32::WHITE),
                egui::StrokeKind::Outside,
            );
        }
        p.text(
            rect.left_center(),
            Align2::LEFT_CENTER,
            *label,
            FontId::proportional(15.0),
            if highlighted {
                Color32::WHITE
            } else {
                Color32::LIGHT_GRAY
            },
        );
        p.text(
            rect.right_center(),
            Align2::RIGHT_CENTER,
            format!("{:.0} %", v * 100.0),
            FontId::monospace(13.0),
            Color32::LIGHT_GRAY,
        );
    }
}

/// The session timeline: one column per window, as tall as the space it is given, its
/// height split among the eight emotions by their smoothed probabilities (a thin grey
/// stub where there was no speech), with a time axis under it; hovering a column shows
/// that window's time and probabilities. Scrolls back through the whole session.
pub fn timeline(ui: &mut Ui, rows: &[SessionRow]) {
    const W: f32 = 4.0;
    const AXIS: f32 = 16.0;
    let summary = match rows.last() {
        Some(last) => {
            let mut n = [0usize; 8];
            let mut speech = 0;
            for k in rows
                .iter()
                .filter_map(|r| r.top.as_deref().and_then(crate::labels::label_index))
            {
                n[k] += 1;
                speech += 1;
            }
            let dominant = (0..8).max_by_key(|&k| n[k]).filter(|&k| n[k] > 0);
            format!(
                "timeline: {:.0} s, {} windows, {} with speech{}",
                last.t_end,
                rows.len(),
                speech,
                dominant.map_or(String::new(), |d| format!(", mostly {}", LABELS[d]))
            )
        }
        None => "timeline: no windows yet".to_string(),
    };
    ui.label(egui::RichText::new(&summary).small());
    let height = ui.available_height().max(60.0 + AXIS);
    egui::ScrollArea::horizontal()
        .id_salt("timeline")
        .stick_to_right(true)
        .show(ui, |ui| {
            let width = (rows.len() as f32 * W).max(ui.available_width());
            let (rect, resp) = ui.allocate_exact_size(Vec2::new(width, height), Sense::hover());
            let p = ui.painter_at(rect);
            let plot = Rect::from_min_max(rect.min, Pos2::new(rect.right(), rect.bottom() - AXIS));
            p.rect_filled(plot, 4.0, Color32::from_gray(20));
            let visible = ui.clip_rect();
            // A tick every 10 s, or every 30 s / 60 s when the columns are too close for labels.
            let step = if rows.len() < 2 {
                10.0
            } else {
                let secs_per_px = (rows[rows.len() - 1].t_end - rows[0].t_end).max(1e-3)
                    / ((rows.len() - 1) as f64 * W as f64);
                [10.0, 30.0, 60.0, 300.0]
                    .into_iter()
                    .find(|s| s / secs_per_px >= 40.0)
                    .unwrap_or(600.0)
            };
            for (k, r) in rows.iter().enumerate() {
                let x = rect.left() + k as f32 * W;
                if x + W < visible.left() || x > visible.right() {
                    continue;
                }
                if r.top.is_some() {
                    let mut y = plot.bottom();
                    for (c, &pk) in r.probs.iter().enumerate() {
                        let h = plot.height() * pk.clamp(0.0, 1.0);
                        p.rect_filled(
                            Rect::from_min_max(Pos2::new(x, y - h), Pos2::new(x + W - 1.0, y)),
                            0.0,
                            EMOTION_COLOURS[c],
                        );
                        y -= h;
                    }
                } else {
                    p.rect_filled(
                        Rect::from_min_max(
                            Pos2::new(x, plot.bottom() - 4.0),
                            Pos2::new(x + W - 1.0, plot.bottom()),
                        ),
                        0.0,
                        Color32::from_gray(60),
                    );
                }
                let prev = if k > 0 { rows[k - 1].t_end } else { -1.0 };
                if (r.t_end / step).floor() != (prev / step).floor() {
                    p.line_segment(
                        [
                            Pos2::new(x, plot.bottom()),
                            Pos2::new(x, plot.bottom() + 4.0),
                        ],
                        Stroke::new(1.0, Color32::GRAY),
                    );
                    p.text(
                        Pos2::new(x, plot.bottom() + 4.0),
                        Align2::LEFT_TOP,
                        clock(r.t_end),
                        FontId::proportional(10.0),
                        Color32::GRAY,
                    );
                }
            }
            if let Some(pos) = resp.hover_pos() {
                let k = ((pos.x - rect.left()) / W).floor();
                if k >= 0.0 && (k as usize) < rows.len() {
                    let r = &rows[k as usize];
                    resp.on_hover_ui_at_pointer(|ui| window_tooltip(ui, r));
                }
            }
        });
}

/// Seconds as "42 s" below a minute, else "m:ss".
fn clock(t: f64) -> String {
    if t < 60.0 {
        format!("{t:.0} s")
    } else {
        let s = t.round() as u64;
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// What hovering one timeline column shows: its time span and its probabilities.
fn window_tooltip(ui: &mut Ui, r: &SessionRow) {
    ui.label(format!(
        "{:.1} - {:.1} s: {}",
        r.t_start,
        r.t_end,
        r.top.as_deref().unwrap_or("no speech")
    ));
    let mut order: Vec<usize> = (0..LABELS.len()).collect();
    order.sort_by(|&a, &b| r.probs[b].total_cmp(&r.probs[a]));
    for k in order {
        ui.colored_label(
            EMOTION_COLOURS[k],
            format!("{:<10} {:>5.1} %", LABELS[k], r.probs[k] * 100.0),
        );
    }
}

/// Training loss per epoch as a line, the x axis spanning all planned epochs.
pub fn loss_curve(ui: &mut Ui, losses: &[f64], epochs: usize) {
    let (rect, resp) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), 90.0), Sense::hover());
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 4.0, Color32::from_gray(20));
    let max = losses.iter().fold(0.0f64, |a, &b| a.max(b)).max(1e-6);
    let x = |i: usize| {
        rect.left() + 4.0 + (rect.width() - 8.0) * i as f32 / epochs.max(2).saturating_sub(1) as f32
    };
    let y = |l: f64| rect.bottom() - 4.0 - (rect.height() - 18.0) * (l / max) as f32;
    let pts: Vec<Pos2> = losses
        .iter()
        .enumerate()
        .map(|(i, &l)| Pos2::new(x(i), y(l)))
        .collect();
    p.add(egui::Shape::line(
        pts,
        Stroke::new(2.0, Color32::from_rgb(250, 200, 60)),
    ));
    let text = match losses.last() {
        Some(l) => format!("training loss: epoch {}/{epochs}, {l:.3}", losses.len()),
        None => "training loss: (no epoch finished yet)".into(),
    };
    p.text(
        rect.left_top() + Vec2::new(6.0, 2.0),
        Align2::LEFT_TOP,
        &text,
        FontId::proportional(11.0),
        Color32::LIGHT_GRAY,
    );
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &text));
}
