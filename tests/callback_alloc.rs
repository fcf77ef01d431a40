//! The audio callback body never allocates: run it under a counting global allocator for
//! every sample format and channel layout, with the ring full and not full.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use emoscope::audio::capture::push_mono;
use ringbuf::traits::{Consumer, Split};
use ringbuf::HeapRb;

struct Counting;
// Per thread, so tests running in parallel do not count each other's allocations.
thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if TRACK.with(|t| t.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(|a| a.get());
    TRACK.with(|t| t.set(true));
    f();
    TRACK.with(|t| t.set(false));
    ALLOCS.with(|a| a.get()) - before
}

#[test]
fn the_guard_sees_an_allocation() {
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))) > 0);
}

#[test]
fn callback_body_does_not_allocate_and_counts_what_does_not_fit() {
    let (mut prod, mut cons) = HeapRb::<f32>::new(4096).split();
    let dropped = AtomicU64::new(0);
    let f32_stereo: Vec<f32> = (0..2048).map(|i| (i as f32 * 0.01).sin()).collect();
    let i16_mono: Vec<i16> = (0..1024).map(|i| (i * 31) as i16).collect();
    let u8_quad: Vec<u8> = (0..4096).map(|i| i as u8).collect();
    let n = allocations_in(|| {
        for _ in 0..4 {
            push_mono(&f32_stereo, 2, &mut prod, &dropped); // 1024 frames
        }
        push_mono(&i16_mono, 1, &mut prod, &dropped); // ring now full: all counted as dropped
        push_mono(&u8_quad, 4, &mut prod, &dropped);
    });
    assert_eq!(n, 0, "the callback body allocated {n} times");
    assert_eq!(dropped.load(Ordering::Relaxed), 1024 + 1024);
    let mut out = vec![0.0f32; 4096];
    assert_eq!(cons.pop_slice(&mut out), 4096);
    // Stereo frames are averaged: frame 1 = (sin(0.02) + sin(0.03)) / 2.
    assert!((out[1] - (0.02f32.sin() + 0.03f32.sin()) / 2.0).abs() < 1e-6);
}
