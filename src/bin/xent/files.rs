//! The command's output files: checked before anything runs, and written whole or not at all.
//!
//! Every output goes first to a temporary file of its own beside its target, and the
//! temporaries are renamed into place only once all of them are complete; on a failure only
//! the temporaries are removed. So a file xent did not create is never removed or half
//! written, and a reader never sees a truncated output.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What a path names, for comparing paths: the canonical path of an existing file, or that of
/// its directory joined with its name. An error when the directory does not exist.
fn identity(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if let Ok(found) = std::fs::canonicalize(p) {
        if found.is_dir() {
            return Err(format!("{path}: is a directory, not a file"));
        }
        return Ok(found);
    }
    let name = p
        .file_name()
        .ok_or_else(|| format!("{path}: not a file name"))?;
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        format!(
            "{path}: its directory {} cannot be used: {e}",
            dir.display()
        )
    })?;
    Ok(dir.join(name))
}

/// Checks, before anything runs, that every output can be written where it is asked for: its
/// directory exists and takes a new file, and no output is also an input or another output.
pub fn check_outputs(inputs: &[&str], outputs: &[&str]) -> Result<(), String> {
    let inputs: Vec<PathBuf> = inputs
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut seen: Vec<PathBuf> = Vec::new();
    for out in outputs {
        let id = identity(out)?;
        if inputs.contains(&id) {
            return Err(format!(
                "{out}: is also an input; write the output elsewhere"
            ));
        }
        if seen.contains(&id) {
            return Err(format!("{out}: is given for two outputs"));
        }
        // The directory takes a new file (so the write at the end will not fail on it).
        let probe = temporary(&id);
        create_new(&probe, &[]).map_err(|e| format!("{out}: cannot write there: {e}"))?;
        let _ = std::fs::remove_file(&probe);
        seen.push(id);
    }
    Ok(())
}

/// A temporary file beside `target`, named after it and this process.
fn temporary(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.xent-{}.tmp", std::process::id()))
}

/// Creates `path` (which must not exist) holding `bytes`, flushed to the disk.
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes every `(path, bytes)`: all to temporaries first, then each renamed into place. On
/// an error no output has been renamed yet (or, if a rename fails, the remaining ones are
/// not), and every temporary is removed.
pub fn write_all(outputs: &[(&str, Vec<u8>)]) -> Result<(), String> {
    let mut written: Vec<(PathBuf, &str)> = Vec::new();
    let mut failure = None;
    for (path, bytes) in outputs {
        let temp = temporary(Path::new(path));
        match create_new(&temp, bytes) {
            Ok(()) => written.push((temp, path)),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                failure = Some(format!("{path}: cannot write: {e}"));
                break;
            }
        }
    }
    if failure.is_none() {
        for (i, (temp, path)) in written.iter().enumerate() {
            if let Err(e) = std::fs::rename(temp, path) {
                failure = Some(format!("{path}: cannot write: {e}"));
                written.drain(..i);
                break;
            }
        }
        if failure.is_none() {
            return Ok(());
        }
    }
    for (temp, _) in &written {
        let _ = std::fs::remove_file(temp);
    }
    Err(failure.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xent-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn outputs_that_are_inputs_or_each_other_are_refused() {
        let d = dir("refused");
        let input = d.join("in.npy");
        std::fs::write(&input, b"data").unwrap();
        let input = input.to_str().unwrap();
        let other = d.join("out.npy");
        let other = other.to_str().unwrap();
        assert!(check_outputs(&[input], &[input]).is_err());
        assert!(check_outputs(&[input], &[other, other]).is_err());
        let missing = d.join("no/out.npy");
        assert!(check_outputs(&[input], &[missing.to_str().unwrap()]).is_err());
        assert!(check_outputs(&[input], &[other]).is_ok());
        assert_eq!(std::fs::read(input).unwrap(), b"data");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "the probe was left behind"
        );
    }

    #[test]
    fn a_failed_write_changes_no_file() {
        let d = dir("failed");
        let kept = d.join("loss.npy");
        std::fs::write(&kept, b"older").unwrap();
        let bad = d.join("no/grad.npy");
        let outputs = [
            (kept.to_str().unwrap(), b"new".to_vec()),
            (bad.to_str().unwrap(), b"new".to_vec()),
        ];
        assert!(write_all(&outputs).is_err());
        assert_eq!(std::fs::read(&kept).unwrap(), b"older");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "a temporary was left"
        );
        let good = [(kept.to_str().unwrap(), b"new".to_vec())];
        write_all(&good).unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), b"new");
    }
}
