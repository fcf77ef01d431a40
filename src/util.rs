//! Small shared helpers: folder creation and atomic file writes (errors naming the
//! path), percentiles, allocator tuning.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Creates `dir` and its parents; the error names the folder.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Reads a whole file of at most `limit` bytes; a larger one is refused by name before
/// anything is allocated for it.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let open = |source| crate::Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(open)?.len();
    if len > limit {
        return Err(crate::Error::Format {
            path: path.to_path_buf(),
            reason: format!("{len} bytes, more than the {limit} such a file may hold"),
        });
    }
    std::fs::read(path).map_err(open)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so
/// a crash or a full disk never leaves a half-written file in place of a good one. The
/// file is synced before the rename and the folder after it: without the second sync a
/// power loss can forget the rename itself (the new clip or list never appears, or the
/// old one comes back).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let werr = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
    tmp.write_all(bytes).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    sync_dir(dir)
}

/// Flushes a folder's entries (a rename, a new or removed file in it) to the disk. On
/// systems where a folder cannot be opened as a file (Windows) this does nothing.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let werr = |source| Error::Write {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(werr)?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The `q` quantile (0..=1) of `v` by nearest rank; 0 for an empty slice.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// Keeps large buffers in the process heap instead of giving them back to the kernel on
/// every free. candle allocates and frees tensors of tens of MB on each training step;
/// with glibc's defaults each one is a fresh `mmap` whose pages fault in again, which cost
/// more system time than the arithmetic (CPU epoch of emocnn on RAVDESS: 69 s -> 40 s).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread
    // exists, and an unaccepted value is refused by glibc (return value 0), not undefined.
    #[allow(unsafe_code)]
    unsafe {
        // The largest mmap threshold glibc accepts on 64-bit (32 MiB).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// For training only: never `mmap` an allocation, however large, so the buffers above
/// [`tune_allocator`]'s 32 MiB limit are reused from the heap too. An LSTM step of paper
/// 1's layer allocates and frees several of 84 MB; as fresh mappings their page faults
/// took a sixth of the step (`cargo bench --bench lstm`, one thread: 1.99 -> 1.69 s for
/// layer 1). Not for the monitor: a heap that cannot give back its middle keeps its peak.
pub fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `tune_allocator`: mallopt only changes allocator parameters (it takes
    // the allocator's own lock), and an unaccepted value is refused, not undefined.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}
