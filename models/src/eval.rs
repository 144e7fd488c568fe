//! Evaluation: accuracy, per-class precision/recall/F1, macro-F1 and the
//! confusion matrix, as a printed table, a JSON document and an SVG picture.
//!
//! Every report also carries a *binary* summary (benign vs attack), because a
//! family model is judged on the binary bars too: a DoS flow called Probe is
//! still a detected attack. The binary view collapses true and predicted
//! classes with [`crate::labels::is_benign_class`].
//!
//! Classes that occur in the evaluated data but not in the model (e.g. an
//! `UnknownAttack` row, or a family absent from the training files) get their
//! own row in the matrix with no predictions, so that they count as errors
//! instead of disappearing.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::labels::is_benign_class;

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of true rows of this class.
    pub support: u64,
}

/// Binary (benign vs attack) view of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub accuracy: f64,
    /// Precision/recall/F1 of the attack class.
    pub attack_precision: f64,
    pub attack_recall: f64,
    pub attack_f1: f64,
    /// Benign rows flagged as attacks / all benign rows.
    pub false_positive_rate: f64,
}

/// An evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Class names (rows/columns of the matrix): model classes first.
    pub classes: Vec<String>,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    pub binary: BinaryMetrics,
    /// Rows scored.
    pub rows: u64,
    /// Rows not scored because a feature was not finite.
    pub skipped_non_finite: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl EvalReport {
    /// Builds a report from a confusion matrix (`confusion[true][pred]`).
    pub fn from_confusion(
        classes: Vec<String>,
        confusion: Vec<Vec<u64>>,
        skipped_non_finite: u64,
    ) -> Self {
        let k = classes.len();
        let total: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
        let mut per_class = Vec::with_capacity(k);
        for i in 0..k {
            let tp = confusion[i][i];
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = (0..k).map(|t| confusion[t][i]).sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            per_class.push(ClassMetrics {
                class: classes[i].clone(),
                precision,
                recall,
                f1,
                support,
            });
        }
        // Macro-F1 over classes present in the data or predicted (sklearn's
        // convention of ignoring classes absent from both).
        let counted: Vec<&ClassMetrics> = per_class
            .iter()
            .enumerate()
            .filter(|(i, m)| m.support > 0 || (0..k).any(|t| confusion[t][*i] > 0))
            .map(|(_, m)| m)
            .collect();
        let macro_f1 = if counted.is_empty() {
            0.0
        } else {
            counted.iter().map(|m| m.f1).sum::<f64>() / counted.len() as f64
        };
        let benign: Vec<bool> = classes.iter().map(|c| is_benign_class(c)).collect();
        let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for t in 0..k {
            for p in 0..k {
                let n = confusion[t][p];
                match (benign[t], benign[p]) {
                    (false, false) => tp += n,
                    (true, false) => fp += n,
                    (false, true) => fn_ += n,
                    (true, true) => tn += n,
                }
            }
        }
        let ap = ratio(tp, tp + fp);
        let ar = ratio(tp, tp + fn_);
        let binary = BinaryMetrics {
            accuracy: ratio(tp + tn, total),
            attack_precision: ap,
            attack_recall: ar,
            attack_f1: if ap + ar > 0.0 {
                2.0 * ap * ar / (ap + ar)
            } else {
                0.0
            },
            false_positive_rate: ratio(fp, fp + tn),
        };
        EvalReport {
            classes,
            accuracy: ratio(correct, total),
            macro_f1,
            per_class,
            confusion,
            binary,
            rows: total,
            skipped_non_finite,
        }
    }

    /// Metrics of a class by name.
    pub fn class(&self, name: &str) -> Option<&ClassMetrics> {
        self.per_class.iter().find(|m| m.class == name)
    }

    /// Human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let w = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(5)
            .max(9);
        let _ = writeln!(
            s,
            "rows {}  accuracy {:.4}  macro-F1 {:.4}  binary accuracy {:.4} (attack P {:.4} R {:.4}, FPR {:.4})",
            self.rows,
            self.accuracy,
            self.macro_f1,
            self.binary.accuracy,
            self.binary.attack_precision,
            self.binary.attack_recall,
            self.binary.false_positive_rate
        );
        if self.skipped_non_finite > 0 {
            let _ = writeln!(
                s,
                "skipped (non-finite features): {}",
                self.skipped_non_finite
            );
        }
        let _ = writeln!(
            s,
            "{:<w$}  {:>9}  {:>9}  {:>9}  {:>8}",
            "class", "precision", "recall", "f1", "support"
        );
        for m in &self.per_class {
            let _ = writeln!(
                s,
                "{:<w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>8}",
                m.class, m.precision, m.recall, m.f1, m.support
            );
        }
        let _ = writeln!(s, "\nconfusion matrix (rows = true, columns = predicted)");
        let cw = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(
                self.classes
                    .iter()
                    .map(|c| c.len().min(12))
                    .max()
                    .unwrap_or(1),
            );
        let _ = write!(s, "{:<w$}", "");
        for c in &self.classes {
            let short: String = c.chars().take(12).collect();
            let _ = write!(s, "  {short:>cw$}");
        }
        let _ = writeln!(s);
        for (i, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{:<w$}", self.classes[i]);
            for v in row {
                let _ = write!(s, "  {v:>cw$}");
            }
            let _ = writeln!(s);
        }
        s
    }

    /// Writes the confusion matrix as an SVG heat map (row-normalised colour,
    /// absolute counts printed in the cells).
    pub fn write_svg(&self, path: &Path, title: &str) -> Result<(), String> {
        let k = self.classes.len().max(1);
        let cell = 70u32;
        let margin_left = 130u32;
        let margin_top = 90u32;
        let size = (
            margin_left + cell * k as u32 + 30,
            margin_top + cell * k as u32 + 40,
        );
        let root = SVGBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let font = ("sans-serif", 14).into_font();
        let small = ("sans-serif", 12).into_font();
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(|e| e.to_string())?;
        root.draw(&Text::new(
            "rows: true class, columns: predicted class".to_string(),
            (10, 34),
            small.clone(),
        ))
        .map_err(|e| e.to_string())?;
        for (i, row) in self.confusion.iter().enumerate() {
            let support: u64 = row.iter().sum();
            for (j, v) in row.iter().enumerate() {
                let x0 = (margin_left + cell * j as u32) as i32;
                let y0 = (margin_top + cell * i as u32) as i32;
                let share = if support > 0 {
                    *v as f64 / support as f64
                } else {
                    0.0
                };
                let shade = (255.0 - 200.0 * share) as u8;
                let color = if i == j {
                    RGBColor(shade, 255 - ((255 - shade) / 4), shade)
                } else {
                    RGBColor(255, shade, shade)
                };
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell as i32, y0 + cell as i32)],
                    color.filled(),
                ))
                .map_err(|e| e.to_string())?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell as i32, y0 + cell as i32)],
                    BLACK.mix(0.2),
                ))
                .map_err(|e| e.to_string())?;
                root.draw(&Text::new(
                    v.to_string(),
                    (x0 + 6, y0 + cell as i32 / 2 - 7),
                    font.clone(),
                ))
                .map_err(|e| e.to_string())?;
            }
            root.draw(&Text::new(
                self.classes[i].clone(),
                (8, (margin_top + cell * i as u32 + cell / 2 - 7) as i32),
                font.clone(),
            ))
            .map_err(|e| e.to_string())?;
        }
        for (j, c) in self.classes.iter().enumerate() {
            let x0 = (margin_left + cell * j as u32 + 4) as i32;
            root.draw(&Text::new(
                c.clone(),
                (x0, margin_top as i32 - 20),
                small.clone(),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes `<stem>.json` and `<stem>.svg` into `dir` (created if needed).
    pub fn write_files(&self, dir: &Path, stem: &str, title: &str) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let jp = dir.join(format!("{stem}.json"));
        std::fs::write(&jp, json).map_err(|e| format!("{}: {e}", jp.display()))?;
        let sp = dir.join(format!("{stem}.svg"));
        self.write_svg(&sp, title)
            .map_err(|e| format!("{}: {e}", sp.display()))?;
        Ok(())
    }
}

/// Accumulates a confusion matrix.
#[derive(Debug, Clone)]
pub struct ConfusionBuilder {
    pub classes: Vec<String>,
    pub matrix: Vec<Vec<u64>>,
    pub skipped_non_finite: u64,
}

impl ConfusionBuilder {
    pub fn new(classes: Vec<String>) -> Self {
        let k = classes.len();
        Self {
            classes,
            matrix: vec![vec![0; k]; k],
            skipped_non_finite: 0,
        }
    }

    /// Index of a class name, adding a new row/column for an unseen one.
    pub fn class_index(&mut self, name: &str) -> usize {
        if let Some(i) = self.classes.iter().position(|c| c == name) {
            return i;
        }
        self.classes.push(name.to_string());
        for row in &mut self.matrix {
            row.push(0);
        }
        self.matrix.push(vec![0; self.classes.len()]);
        self.classes.len() - 1
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.matrix[truth][predicted] += 1;
    }

    pub fn finish(self) -> EvalReport {
        EvalReport::from_confusion(self.classes, self.matrix, self.skipped_non_finite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> EvalReport {
        let mut b = ConfusionBuilder::new(vec!["normal".into(), "DoS".into(), "Probe".into()]);
        for (t, p, n) in [
            (0, 0, 90),
            (0, 1, 10),
            (1, 1, 40),
            (1, 0, 10),
            (2, 1, 5),
            (2, 2, 45),
        ] {
            for _ in 0..n {
                b.add(t, p);
            }
        }
        let u = b.class_index("UnknownAttack");
        b.add(u, 0);
        b.finish()
    }

    #[test]
    fn metrics_are_correct() {
        let r = report();
        assert_eq!(r.rows, 201);
        assert!((r.accuracy - 175.0 / 201.0).abs() < 1e-12);
        let dos = r.class("DoS").expect("dos");
        assert!((dos.precision - 40.0 / 55.0).abs() < 1e-12);
        assert!((dos.recall - 40.0 / 50.0).abs() < 1e-12);
        assert_eq!(r.class("UnknownAttack").expect("u").support, 1);
        // Binary: attack rows 101, of which 11 predicted normal; benign 100 with 10 FP.
        assert!((r.binary.accuracy - (90.0 + 90.0) / 201.0).abs() < 1e-12);
        assert!((r.binary.false_positive_rate - 0.1).abs() < 1e-12);
        assert_eq!(r.confusion.len(), 4);
        assert!(r.macro_f1 > 0.0 && r.macro_f1 < 1.0);
    }

    #[test]
    fn writes_table_json_and_svg() {
        let r = report();
        let t = r.table();
        assert!(t.contains("macro-F1") && t.contains("UnknownAttack"));
        let dir = tempfile::tempdir().expect("tmp");
        r.write_files(dir.path(), "eval", "test").expect("write");
        let json = std::fs::read_to_string(dir.path().join("eval.json")).expect("json");
        let back: EvalReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        let svg = std::fs::read_to_string(dir.path().join("eval.svg")).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("DoS"));
    }
}
