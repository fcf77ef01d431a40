//! Seeded weight initialisation: a `VarBuilder` backend that draws each new variable from a
//! generator seeded by the run's seed and the variable's name, following the layer's own
//! `Init` (constant, uniform, normal, Kaiming). candle draws initial weights from a CPU
//! generator that cannot be seeded; with this, two runs with the same seed start from the
//! same weights, whatever order the layers are built in. [`LoadedWeights`] is the other
//! backend: a model read from its file takes each variable straight from the file's
//! tensors, nothing drawn first.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Creates missing variables in `varmap` from `seed`; existing ones are returned as they are.
pub struct SeededInit {
    pub varmap: VarMap,
    pub seed: u64,
}

/// FNV-1a of a variable's name: its own stream of the run's generator.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `n` values of `init` for a variable of `shape`, from `rng`.
fn draw(init: Init, shape: &Shape, n: usize, rng: &mut StdRng) -> Vec<f32> {
    let uniform = |rng: &mut StdRng, lo: f64, up: f64| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
    };
    // Box-Muller: two uniforms give one standard normal.
    let normal = |rng: &mut StdRng, mean: f64, std: f64| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                let u2: f64 = rng.random();
                (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    };
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            // As candle's Init::var: std = gain / sqrt(fan).
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    uniform(rng, -b, b)
                }
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut vars = self.varmap.data().lock().expect("varmap lock");
        if let Some(v) = vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = StdRng::seed_from_u64(self.seed ^ name_hash(name));
        let values = draw(h, &s, s.elem_count(), &mut rng);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: a freshly initialised model has no unnamed tensors")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap lock")
            .contains_key(name)
    }
}

/// Creates each variable from the tensor of that name read from a weights file: a loaded
/// model's variables are the file's values, checked against the shape the layer asks for.
pub struct LoadedWeights {
    pub varmap: VarMap,
    pub tensors: std::collections::HashMap<String, Tensor>,
}

impl SimpleBackend for LoadedWeights {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut vars = self.varmap.data().lock().expect("varmap lock");
        if let Some(v) = vars.get(name) {
            return Ok(v.as_tensor().clone());
        }
        let Some(t) = self.tensors.get(name) else {
            candle_core::bail!("no tensor {name}")
        };
        if t.shape() != &s {
            candle_core::bail!(
                "{name} is {:?} in the file, the layer needs {:?}",
                t.dims(),
                s.dims()
            );
        }
        let var = Var::from_tensor(&t.to_dtype(dtype)?.to_device(dev)?)?;
        let t = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let Some(t) = self.tensors.get(name) else {
            candle_core::bail!("no tensor {name}")
        };
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_init_and_repeat_for_the_same_seed_and_name() {
        let shape = Shape::from((64, 32, 3, 3));
        let n = shape.elem_count();
        let mut a = StdRng::seed_from_u64(5);
        let k = draw(candle_nn::init::DEFAULT_KAIMING_NORMAL, &shape, n, &mut a);
        let mean = k.iter().sum::<f32>() / n as f32;
        let std = (k.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n as f32).sqrt();
        let want = (2.0f32 / (32.0 * 9.0)).sqrt();
        assert!(mean.abs() < 0.01 * want * 10.0, "mean {mean}");
        assert!((std / want - 1.0).abs() < 0.03, "std {std}, want {want}");
        let u = draw(Init::Uniform { lo: -0.5, up: 0.25 }, &shape, n, &mut a);
        assert!(u.iter().all(|&x| (-0.5..0.25).contains(&x)));
        assert!(draw(Init::Const(0.7), &shape, 3, &mut a) == vec![0.7f32; 3]);

        let make = |seed| {
            let vm = VarMap::new();
            let b = SeededInit {
                varmap: vm.clone(),
                seed,
            };
            b.get(
                Shape::from(10),
                "x.weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
                DType::F32,
                &Device::Cpu,
            )
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
        };
        assert_eq!(make(3), make(3));
        assert_ne!(make(3), make(4));
    }

    #[test]
    fn loaded_variables_are_the_files_tensors_or_a_named_error() {
        let file = Tensor::new(&[[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
        let b = LoadedWeights {
            varmap: VarMap::new(),
            tensors: [("fc.weight".to_string(), file)].into(),
        };
        let init = Init::Const(0.0);
        let got = b
            .get(
                Shape::from((2, 3)),
                "fc.weight",
                init,
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        assert_eq!(got.to_vec2::<f32>().unwrap(), [[1., 2., 3.], [4., 5., 6.]]);
        // The variable is the one training updates.
        let vars = b.varmap.all_vars();
        assert_eq!(vars.len(), 1);
        assert_eq!(vars[0].as_tensor().to_vec2::<f32>().unwrap()[1][2], 6.0);
        let e = b
            .get(
                Shape::from((3, 2)),
                "fc.weight2",
                init,
                DType::F32,
                &Device::Cpu,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tensor fc.weight2"), "{e}");
        let b2 = LoadedWeights {
            varmap: VarMap::new(),
            tensors: b.tensors.clone(),
        };
        let e = b2
            .get(
                Shape::from((3, 2)),
                "fc.weight",
                init,
                DType::F32,
                &Device::Cpu,
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fc.weight is [2, 3] in the file, the layer needs [3, 2]"),
            "{e}"
        );
    }
}
