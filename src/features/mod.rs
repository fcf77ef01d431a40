//! `FeatureSpec`, the one description of how audio becomes a model's input, and the
//! extractor that applies it; training, file analysis and live monitoring all call this.
//!
//! One concern per file: `spec` (what to compute), `extractor` (computing it),
//! `profile` (the speaker's usual voice), `functionals` (statistics over a window).

mod extractor;
mod functionals;
mod profile;
mod spec;

pub use extractor::*;
pub use functionals::*;
pub use profile::*;
pub use spec::*;
