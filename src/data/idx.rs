//! The IDX format of MNIST and Fashion-MNIST (big-endian header; gzipped or raw).

use anyhow::{bail, Context, Result};
use std::io::Read;

use super::Dataset;

/// Decompress when the bytes start with the gzip magic.
pub fn maybe_gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .with_context(|| format!("{what}: corrupt gzip data"))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse an image file (magic 0x00000803: count, rows, cols) and a label file (0x00000801).
pub fn pair(images: &[u8], labels: &[u8], classes: usize, what: &str) -> Result<Dataset> {
    let img = maybe_gunzip(images, what)?;
    let lab = maybe_gunzip(labels, what)?;
    if img.len() < 16 || be32(&img, 0) != 0x0803 {
        bail!("{what}: not an IDX image file (expected magic 0x00000803, a 16-byte header)");
    }
    if lab.len() < 8 || be32(&lab, 0) != 0x0801 {
        bail!("{what}: not an IDX label file (expected magic 0x00000801, an 8-byte header)");
    }
    let (n, h, w) = (
        be32(&img, 4) as usize,
        be32(&img, 8) as usize,
        be32(&img, 12) as usize,
    );
    let nl = be32(&lab, 4) as usize;
    if img.len() != 16 + n * h * w {
        bail!("{what}: header says {n} images of {h}×{w} ({} bytes) but the file has {} bytes after the header (truncated?)", n * h * w, img.len() - 16);
    }
    if lab.len() != 8 + nl {
        bail!(
            "{what}: label header says {nl} labels but the file has {} bytes after the header",
            lab.len() - 8
        );
    }
    if nl != n {
        bail!("{what}: {n} images but {nl} labels");
    }
    let d = Dataset {
        images: img[16..].to_vec(),
        labels: lab[8..].to_vec(),
        n,
        c: 1,
        h,
        w,
        classes,
    };
    d.validate(what)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_file(n: u32, h: u32, w: u32, bytes: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [0x0803u32, n, h, w] {
            v.extend(x.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(7u8, bytes));
        v
    }

    fn label_file(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0x0801u32.to_be_bytes());
        v.extend((labels.len() as u32).to_be_bytes());
        v.extend(labels);
        v
    }

    #[test]
    fn parses_and_rejects_bad_files() {
        let d = pair(&image_file(2, 2, 3, 12), &label_file(&[1, 9]), 10, "t").unwrap();
        assert_eq!((d.n, d.h, d.w, d.labels.clone()), (2, 2, 3, vec![1, 9]));
        let e = |r: Result<Dataset>| r.unwrap_err().to_string();
        assert!(e(pair(
            &image_file(2, 2, 3, 11),
            &label_file(&[1, 9]),
            10,
            "t"
        ))
        .contains("truncated"));
        assert!(e(pair(&label_file(&[1]), &label_file(&[1, 9]), 10, "t")).contains("magic"));
        assert!(
            e(pair(&image_file(2, 2, 3, 12), &label_file(&[1]), 10, "t"))
                .contains("2 images but 1 labels")
        );
        assert!(e(pair(
            &image_file(2, 2, 3, 12),
            &label_file(&[1, 12]),
            10,
            "t"
        ))
        .contains("out of range"));
        assert!(e(pair(&[0x1f, 0x8b, 0, 1], &label_file(&[1]), 10, "t")).contains("gzip"));
    }
}
