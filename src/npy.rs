//! Reading and writing NumPy `.npy` files (version 1.0, little-endian float32, C order):
//! the exchange format for feature matrices and librosa reference fixtures.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Writes a float32 C-order array of `shape`.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "shape does not match data"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut head = Vec::with_capacity(10 + header.len());
    head.extend_from_slice(b"\x93NUMPY\x01\x00");
    head.extend_from_slice(&(header.len() as u16).to_le_bytes());
    head.extend_from_slice(header.as_bytes());
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&head)?;
        // The data in 64 KiB pieces, little-endian, through one reused buffer.
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in data.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            f.write_all(&buf)?;
        }
        Ok(())
    };
    if let Err(source) = write() {
        // A full disk must not leave a short file that reads as a smaller array (only a
        // regular file is removed: `--out /dev/full` must not delete the device).
        if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(path);
        }
        return Err(Error::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// Reads a little-endian float32 or float64 C-order `.npy`; returns (shape, data as f32).
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: &str| Error::Format {
        path: path.to_path_buf(),
        reason: format!("not a supported .npy file: {reason}"),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown version")),
    };
    let header =
        std::str::from_utf8(&bytes[hstart..hstart + hlen]).map_err(|_| bad("header not text"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("fortran order"));
    }
    let f64_data = if header.contains("'<f4'") {
        false
    } else if header.contains("'<f8'") {
        true
    } else {
        return Err(bad("dtype is not <f4 or <f8"));
    };
    let shape_txt = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_txt
        .trim_start_matches([' ', '('])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let body = &bytes[hstart + hlen..];
    let n: usize = shape.iter().product();
    let data: Vec<f32> = if f64_data {
        if body.len() < n * 8 {
            return Err(bad("data shorter than shape"));
        }
        body.chunks_exact(8)
            .take(n)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect()
    } else {
        if body.len() < n * 4 {
            return Err(bad("data shorter than shape"));
        }
        body.chunks_exact(4)
            .take(n)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    Ok((shape, data))
}
