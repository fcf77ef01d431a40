//! Paper 1's LSTM layer, one training step (forward and backward) of a batch of 32
//! sequences of 160 frames, hidden 1024: emoscope's layer (`model::Lstm`: the whole
//! layer one operation, a few large products and a hand-written backward pass) beside
//! candle's `LSTM` (autograd through every frame), the same weights. Layer 1 reads 40
//! MFCCs a frame, layer 2 the 1024 states of layer 1 (candle's layer only for layer 1: it
//! takes tens of seconds a step).
//! `RAYON_NUM_THREADS=2 cargo bench --bench lstm` (`EMOSCOPE_BENCH_CANDLE=1` adds candle's
//! layer); `bash scripts/bench_lstm.sh` runs it beside PyTorch on 2 threads and on 1.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::{LSTMConfig, RNN};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion};
use emoscope::model::Lstm;

fn bench(c: &mut Criterion) {
    // The allocator as `emoscope train` sets it.
    emoscope::util::tune_allocator();
    emoscope::util::keep_large_buffers();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("lstm_train_step");
    g.sample_size(10);
    for input in [40usize, 1024] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let ours = Lstm::new(vb.pp("l"), input, 1024).unwrap();
        let theirs = candle_nn::rnn::lstm(input, 1024, LSTMConfig::default(), vb.pp("l")).unwrap();
        let x =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (32, 160, input), &dev).unwrap()).unwrap();
        g.bench_function(format!("emoscope input {input}"), |b| {
            b.iter(|| {
                let h = ours.seq(x.as_tensor()).unwrap();
                h.sum_all().unwrap().backward().unwrap()
            })
        });
        // candle's own LSTM (autograd through every frame, ~10 s a step): only when asked.
        if input != 40 || std::env::var_os("EMOSCOPE_BENCH_CANDLE").is_none() {
            continue;
        }
        g.bench_function(format!("candle input {input}"), |b| {
            b.iter(|| {
                let h = theirs
                    .states_to_tensor(&theirs.seq(x.as_tensor()).unwrap())
                    .unwrap();
                h.sum_all().unwrap().backward().unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
