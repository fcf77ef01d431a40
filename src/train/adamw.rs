//! AdamW whose state can be saved and restored: the same arithmetic as candle's `AdamW`
//! (whose moments are private), with every variable named, so a checkpoint holds the
//! first and second moments and the step count, and a resumed run computes what an
//! uninterrupted one would.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::ParamsAdamW;

use crate::{Error, Result};

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// AdamW over named variables (see the module note).
pub struct AdamW {
    slots: Vec<Slot>,
    step_t: usize,
    params: ParamsAdamW,
}

impl AdamW {
    /// Zero moments for every float variable of `vars`, sorted by name.
    pub fn new(mut vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            step_t: 0,
            params,
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step_t
    }

    /// One update from `grads`, as candle's `AdamW::step`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let (lr, beta1, beta2) = (p.lr, p.beta1, p.beta2);
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        for s in &self.slots {
            let Some(g) = grads.get(&s.var) else { continue };
            let next_m = ((s.m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((s.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let next_theta = (s.var.as_tensor() * (1f64 - lr * p.weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let next_theta = (next_theta - (adjusted * lr)?)?;
            s.m.set(&next_m)?;
            s.v.set(&next_v)?;
            s.var.set(&next_theta)?;
        }
        Ok(())
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Writes the moments (`m.NAME`, `v.NAME`) and the step count (`step_t`) to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for s in &self.slots {
            t.insert(format!("m.{}", s.name), s.m.as_tensor().clone());
            t.insert(format!("v.{}", s.name), s.v.as_tensor().clone());
        }
        t.insert(
            "step_t".into(),
            Tensor::new(&[self.step_t as i64], &candle_core::Device::Cpu)?,
        );
        let bytes =
            safetensors::serialize(t.iter().map(|(k, v)| (k.as_str(), v)), None).map_err(|e| {
                Error::Format {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
        crate::util::write_atomic(path, &bytes)
    }

    /// Restores what [`save`](Self::save) wrote: every variable's moments must be there,
    /// with its shape, or the error names the file and the variable.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let device = self
            .slots
            .first()
            .map_or(candle_core::Device::Cpu, |s| s.var.device().clone());
        let t = candle_core::safetensors::load_buffer(&bytes, &device)
            .map_err(|e| bad(format!("not an optimiser state: {e}")))?;
        for s in &self.slots {
            for (which, dst) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("{which}.{}", s.name);
                let src = t
                    .get(&key)
                    .ok_or_else(|| bad(format!("no {key}: the state is of another model")))?;
                if src.dims() != dst.dims() {
                    return Err(bad(format!(
                        "{key} is {:?}, the model's variable {:?}",
                        src.dims(),
                        dst.dims()
                    )));
                }
                dst.set(&src.to_dtype(dst.dtype())?)?;
            }
        }
        let step = t
            .get("step_t")
            .ok_or_else(|| bad("no step_t".into()))?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?;
        self.step_t = step.first().copied().unwrap_or(0).max(0) as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    fn problem() -> (Var, Tensor) {
        let w = Var::new(&[[0.5f32, -1.0], [2.0, 0.25]], &Device::Cpu).unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0], [-1.0, 0.5], [3.0, -2.0]], &Device::Cpu).unwrap();
        (w, x)
    }

    fn loss(w: &Var, x: &Tensor) -> Tensor {
        x.matmul(&w.as_tensor().t().unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
    }

    #[test]
    fn steps_equal_candles_adamw_bit_for_bit() {
        let params = ParamsAdamW {
            lr: 0.01,
            weight_decay: 0.05,
            ..Default::default()
        };
        let (w1, x) = problem();
        let (w2, _) = problem();
        let mut ours = AdamW::new(vec![("w".into(), w1.clone())], params.clone()).unwrap();
        let mut theirs = candle_nn::AdamW::new(vec![w2.clone()], params).unwrap();
        for _ in 0..5 {
            ours.backward_step(&loss(&w1, &x)).unwrap();
            theirs.backward_step(&loss(&w2, &x)).unwrap();
        }
        assert_eq!(
            w1.as_tensor().to_vec2::<f32>().unwrap(),
            w2.as_tensor().to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn a_restored_state_continues_as_an_uninterrupted_run() {
        let params = ParamsAdamW {
            lr: 0.02,
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let (w1, x) = problem();
        let mut straight = AdamW::new(vec![("w".into(), w1.clone())], params.clone()).unwrap();
        for _ in 0..6 {
            straight.backward_step(&loss(&w1, &x)).unwrap();
        }
        // Three steps, saved; a new optimiser (fresh moments) restored from the file.
        let (w2, _) = problem();
        let mut first = AdamW::new(vec![("w".into(), w2.clone())], params.clone()).unwrap();
        for _ in 0..3 {
            first.backward_step(&loss(&w2, &x)).unwrap();
        }
        let state = dir.path().join("optimizer.safetensors");
        first.save(&state).unwrap();
        let mut resumed = AdamW::new(vec![("w".into(), w2.clone())], params.clone()).unwrap();
        resumed.load(&state).unwrap();
        assert_eq!(resumed.steps(), 3);
        for _ in 0..3 {
            resumed.backward_step(&loss(&w2, &x)).unwrap();
        }
        assert_eq!(
            w1.as_tensor().to_vec2::<f32>().unwrap(),
            w2.as_tensor().to_vec2::<f32>().unwrap()
        );
        // Restarting the moments instead gives other weights: the state matters.
        let (w3, _) = problem();
        let mut first = AdamW::new(vec![("w".into(), w3.clone())], params.clone()).unwrap();
        for _ in 0..3 {
            first.backward_step(&loss(&w3, &x)).unwrap();
        }
        let mut restarted = AdamW::new(vec![("w".into(), w3.clone())], params).unwrap();
        for _ in 0..3 {
            restarted.backward_step(&loss(&w3, &x)).unwrap();
        }
        assert_ne!(
            w1.as_tensor().to_vec2::<f32>().unwrap(),
            w3.as_tensor().to_vec2::<f32>().unwrap()
        );
        // Another model's state is refused, naming the variable.
        let mut other = AdamW::new(
            vec![(
                "u".into(),
                Var::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
            )],
            ParamsAdamW::default(),
        )
        .unwrap();
        let e = other.load(&state).unwrap_err().to_string();
        assert!(e.contains("no m.u"), "{e}");
    }
}
