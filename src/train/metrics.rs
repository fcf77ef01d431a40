//! Classification metrics over clips: accuracy, unweighted average recall, macro F1,
//! per-class recall/precision/F1, confusion matrix, one-vs-rest ROC-AUC and expected
//! calibration error. Labels absent from the data are listed and left out of averages.

use crate::labels::{argmax, LABELS, N_LABELS};
use crate::model::{ClassMetrics, Metrics};

/// A metric that may be undefined, to three decimals, or `n/a`.
pub fn fmt_optional(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// Area under the ROC curve of `scores` for positives `pos` (Mann-Whitney, ties halved).
pub fn roc_auc(scores: &[f32], pos: &[bool]) -> Option<f64> {
    let n_pos = pos.iter().filter(|&&p| p).count();
    let n_neg = pos.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let sum_pos: f64 = (0..scores.len())
        .filter(|&k| pos[k])
        .map(|k| ranks[k])
        .sum();
    Some((sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos * n_neg) as f64)
}

/// Expected calibration error of the top-class confidence over 15 equal-width bins.
pub fn ece(probs: &[[f32; N_LABELS]], truth: &[usize]) -> f64 {
    let tops: Vec<(f64, bool)> = probs
        .iter()
        .zip(truth)
        .map(|(p, &t)| {
            let top = argmax(p);
            (p[top] as f64, top == t)
        })
        .collect();
    binned_ece(&tops)
}

/// ECE over 15 equal-width confidence bins of (top probability, was it right) pairs.
fn binned_ece(tops: &[(f64, bool)]) -> f64 {
    const BINS: usize = 15;
    let mut conf = [0.0f64; BINS];
    let mut acc = [0.0f64; BINS];
    let mut cnt = [0usize; BINS];
    for &(c, right) in tops {
        let b = ((c * BINS as f64) as usize).min(BINS - 1);
        conf[b] += c;
        acc[b] += right as u8 as f64;
        cnt[b] += 1;
    }
    let n = tops.len().max(1) as f64;
    (0..BINS)
        .filter(|&b| cnt[b] > 0)
        .map(|b| (acc[b] - conf[b]).abs() / n)
        .sum()
}

/// The ECE a perfectly calibrated model would show on these clips by chance alone: the
/// mean, over 500 draws, of the ECE when each clip is right with exactly its top
/// probability (seeded, so the figure is the same every run). On a few hundred clips it
/// is far from zero (about 0.1 on 120 clips), so an ECE is only meaningful beside it.
pub fn ece_by_chance(probs: &[[f32; N_LABELS]]) -> f64 {
    use rand::{Rng, SeedableRng};
    const DRAWS: usize = 500;
    if probs.is_empty() {
        return 0.0;
    }
    let conf: Vec<f64> = probs.iter().map(|p| p[argmax(p)] as f64).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00ec_e0ec);
    let mut tops = vec![(0.0, false); conf.len()];
    let mut total = 0.0;
    for _ in 0..DRAWS {
        for (t, &c) in tops.iter_mut().zip(&conf) {
            *t = (c, rng.random::<f64>() < c);
        }
        total += binned_ece(&tops);
    }
    total / DRAWS as f64
}

/// All metrics for clip-level probabilities against true labels.
pub fn evaluate(probs: &[[f32; N_LABELS]], truth: &[usize]) -> Metrics {
    let mut confusion = vec![vec![0usize; N_LABELS]; N_LABELS];
    for (p, &t) in probs.iter().zip(truth) {
        confusion[t][argmax(p)] += 1;
    }
    let n = truth.len();
    let correct: usize = (0..N_LABELS).map(|i| confusion[i][i]).sum();
    let mut per_class = Vec::new();
    let mut absent = Vec::new();
    let (mut recalls, mut f1s, mut aucs) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..N_LABELS {
        let support: usize = confusion[c].iter().sum();
        let predicted: usize = (0..N_LABELS).map(|t| confusion[t][c]).sum();
        let tp = confusion[c][c] as f64;
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let f1 = if recall + precision > 0.0 {
            2.0 * recall * precision / (recall + precision)
        } else {
            0.0
        };
        let scores: Vec<f32> = probs.iter().map(|p| p[c]).collect();
        let pos: Vec<bool> = truth.iter().map(|&t| t == c).collect();
        let auc = roc_auc(&scores, &pos);
        if support == 0 {
            absent.push(LABELS[c].to_string());
        } else {
            recalls.push(recall);
            f1s.push(f1);
            aucs.extend(auc);
        }
        per_class.push(ClassMetrics {
            label: LABELS[c].into(),
            support,
            recall,
            precision,
            f1,
            roc_auc: auc,
        });
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Metrics {
        n,
        accuracy: if n > 0 {
            correct as f64 / n as f64
        } else {
            0.0
        },
        uar: mean(&recalls),
        macro_f1: mean(&f1s),
        // A ROC curve needs positives and negatives: with one label present no class has
        // both, and the mean is undefined rather than 0.
        roc_auc_mean: (!aucs.is_empty()).then(|| mean(&aucs)),
        ece: ece(probs, truth),
        ece_by_chance: ece_by_chance(probs),
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        absent,
        per_class,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_inverted_scores() {
        let pos = [true, true, false, false];
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &pos), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &pos), Some(0.0));
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &pos), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, true]), None);
    }

    #[test]
    fn roc_auc_of_a_one_label_set_is_undefined_not_zero() {
        // Three angry clips, nothing else: every other metric is defined, ROC-AUC is not.
        let mut p = [0.02f32; N_LABELS];
        p[4] = 0.86;
        let m = evaluate(&[p, p, p], &[4, 4, 4]);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.uar, 1.0);
        assert_eq!(m.roc_auc_mean, None);
        assert_eq!(fmt_optional(m.roc_auc_mean), "n/a");
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["roc_auc_mean"].is_null());
        // Two labels present: defined again.
        let mut q = [0.02f32; N_LABELS];
        q[3] = 0.86;
        let m = evaluate(&[p, q], &[4, 3]);
        assert_eq!(m.roc_auc_mean, Some(1.0));
        assert_eq!(fmt_optional(Some(0.91234)), "0.912");
    }

    #[test]
    fn uar_ignores_absent_labels_and_differs_from_accuracy() {
        let one = |c: usize| {
            let mut p = [0.0f32; N_LABELS];
            p[c] = 1.0;
            p
        };
        // 3 neutral all right, 1 angry wrong (predicted neutral).
        let probs = vec![one(0), one(0), one(0), one(0)];
        let truth = vec![0, 0, 0, 4];
        let m = evaluate(&probs, &truth);
        assert_eq!(m.accuracy, 0.75);
        assert_eq!(m.uar, 0.5);
        assert_eq!(m.absent.len(), 6);
        assert_eq!(m.confusion[4][0], 1);
        // confident and 75 % right: ECE = |0.75 - 1.0| = 0.25
        assert!((m.ece - 0.25).abs() < 1e-9);
        // Certain predictions are right every draw: no ECE by chance.
        assert_eq!(m.ece_by_chance, 0.0);
    }

    /// A perfectly calibrated model's ECE by chance shrinks like 1/sqrt(n): on 120 clips of
    /// confidence 0.5 each draw is a binomial(120, 0.5) count, whose mean absolute
    /// deviation from 60 is about 4.4 clips (0.036); the figure must agree, and be four
    /// times smaller on 16 times as many clips.
    #[test]
    fn ece_by_chance_is_the_sampling_noise_of_a_calibrated_model() {
        let half = |n: usize| vec![[0.5f32, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; n];
        let small = ece_by_chance(&half(120));
        let exact = {
            // E|X - 60| for X ~ Binomial(120, 1/2), divided by 120.
            let mut p = 0.5f64.powi(120);
            let mut e = 0.0;
            for k in 0..=120usize {
                e += p * (k as f64 - 60.0).abs();
                p *= (120 - k) as f64 / (k + 1) as f64;
            }
            e / 120.0
        };
        assert!((small - exact).abs() < 0.004, "{small} against {exact}");
        let large = ece_by_chance(&half(1920));
        assert!((small / large - 4.0).abs() < 0.6, "{small} / {large}");
    }
}
