//! Where a model runs: `--compute auto|cpu|cuda[:N]` on every command that runs one, and
//! the window's picker. A GPU that cannot be used (this build has no CUDA, no driver, no
//! such device) is never fatal: the model runs on the CPU and the reason is said once.

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, DeviceLocation};

/// Whether this binary was built with candle's CUDA backend (`--features cuda`).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Where a model is asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// CUDA device 0 when this build has CUDA and a GPU answers, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for Compute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{s}' is not a place to run a model; use auto, cpu, cuda or cuda:N (N = the GPU's number, from 0)")
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Compute::Auto),
            "cpu" => Ok(Compute::Cpu),
            "cuda" | "gpu" => Ok(Compute::Cuda(0)),
            t => match t.strip_prefix("cuda:") {
                Some(n)
                    if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Ok(Compute::Cuda(n.parse().map_err(|_| bad())?))
                }
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compute::Auto => write!(f, "auto"),
            Compute::Cpu => write!(f, "cpu"),
            Compute::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The device a [`Compute`] request got, and why it is not the one asked for, if not.
#[derive(Debug, Clone)]
pub struct Placement {
    pub asked: Compute,
    pub device: Device,
    /// Set when a GPU was asked for (or, with `auto`, present but unusable) and the model
    /// runs on the CPU instead: what went wrong, for the user.
    pub fallback: Option<String>,
}

/// The name of a device for people: `CPU` or `CUDA:N`.
pub fn device_name(d: &Device) -> String {
    match d.location() {
        DeviceLocation::Cuda { gpu_id } => format!("CUDA:{gpu_id}"),
        DeviceLocation::Cpu => "CPU".into(),
        DeviceLocation::Metal { gpu_id } => format!("Metal:{gpu_id}"),
    }
}

impl Placement {
    /// `CPU` or `CUDA:N`.
    pub fn label(&self) -> String {
        device_name(&self.device)
    }

    /// One line for logs: where the model runs and, after a fallback, why.
    pub fn describe(&self) -> String {
        match &self.fallback {
            Some(why) => format!("model runs on the CPU ({why})"),
            None => format!("model runs on the {}", self.label()),
        }
    }
}

/// Opens the device `asked` names; anything that keeps a GPU from being used gives the CPU
/// with the reason in [`Placement::fallback`]. `EMOSCOPE_CPU=1` makes `auto` the CPU.
pub fn place(asked: Compute) -> Placement {
    let cpu = |fallback: Option<String>| Placement {
        asked,
        device: Device::Cpu,
        fallback,
    };
    match asked {
        Compute::Cpu => cpu(None),
        Compute::Auto if std::env::var("EMOSCOPE_CPU").is_ok_and(|v| v == "1") => cpu(None),
        Compute::Auto if !CUDA_BUILT => cpu(None),
        Compute::Auto => match Device::new_cuda(0) {
            Ok(d) => Placement {
                asked,
                device: d,
                fallback: None,
            },
            Err(e) => cpu(Some(format!("no usable GPU for --compute auto: {e}"))),
        },
        Compute::Cuda(n) if !CUDA_BUILT => cpu(Some(format!(
            "--compute cuda:{n} asked for a GPU, but this emoscope was built without CUDA; \
             build with `cargo build --release --features cuda` (docs/gpu.md)"
        ))),
        Compute::Cuda(n) => match Device::new_cuda(n) {
            Ok(d) => Placement {
                asked,
                device: d,
                fallback: None,
            },
            Err(e) => cpu(Some(format!(
                "CUDA device {n} could not be opened: {e}; check `nvidia-smi` and the driver (580 or newer)"
            ))),
        },
    }
}

/// Fault injection for the tests of the mid-session fallback (as the virtual microphone
/// tests stop a PulseAudio server): with `EMOSCOPE_FAIL_COMPUTE_AFTER=N`, the live
/// inference thread's N+1-th window fails on the device it started on, as a GPU that runs
/// out of memory or loses its driver would. Read once when the thread starts.
pub fn injected_failure_after() -> Option<u64> {
    std::env::var("EMOSCOPE_FAIL_COMPUTE_AFTER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_and_prints_back() {
        for (s, c) in [
            ("auto", Compute::Auto),
            ("cpu", Compute::Cpu),
            ("CPU", Compute::Cpu),
            ("cuda", Compute::Cuda(0)),
            ("cuda:0", Compute::Cuda(0)),
            ("cuda:3", Compute::Cuda(3)),
        ] {
            assert_eq!(s.parse::<Compute>().unwrap(), c, "{s}");
            assert_eq!(c.to_string().parse::<Compute>().unwrap(), c);
        }
        for bad in [
            "",
            "tpu",
            "cuda:",
            "cuda:x",
            "cuda:-1",
            "cuda:1234",
            "cuda0",
        ] {
            let e = bad.parse::<Compute>().unwrap_err();
            assert!(e.contains("auto, cpu, cuda or cuda:N"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_cpu_is_always_there_and_a_missing_gpu_falls_back_to_it() {
        let p = place(Compute::Cpu);
        assert!(p.device.is_cpu() && p.fallback.is_none());
        assert_eq!(p.label(), "CPU");
        if !CUDA_BUILT {
            let p = place(Compute::Cuda(1));
            assert!(p.device.is_cpu());
            let why = p.fallback.unwrap();
            assert!(
                why.contains("built without CUDA") && why.contains("--features cuda"),
                "{why}"
            );
            let p = place(Compute::Auto);
            assert!(p.device.is_cpu() && p.fallback.is_none());
        }
    }
}
