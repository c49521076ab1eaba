//! The command's output files: checked before anything runs, and written whole or not at all.
//!
//! A regular file (or a new one) is written first to a temporary file of its own beside it,
//! and the temporaries are renamed into place only once all of them are complete; on a
//! failure, or when the command is interrupted (SIGINT, SIGTERM), only the temporaries are
//! removed. So a file xent did not create is never removed or half written, and a reader never
//! sees a truncated output. A symlink is followed: its target is written (a dangling one's
//! target created), the link itself kept. What is not a regular file, a device, a FIFO or a
//! socket (through any symlinks), and `-` (standard output) are written through, after every
//! temporary is complete and before any is renamed: never replaced, and a full device is a
//! write error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where an output goes.
#[derive(Debug, PartialEq)]
enum Target {
    /// A regular file, or a new one, at this path (symlinks resolved): written to a
    /// temporary beside it, then renamed into place.
    File(PathBuf),
    /// A device, FIFO or socket, opened as named: written through.
    Through(PathBuf),
    /// `-`: standard output.
    Stdout,
}

/// Symlinks followed at most, as the kernel does.
const MAX_LINKS: usize = 40;

/// What `path` names as an output (see the module docs). An error for a directory or a path
/// whose directory does not exist.
fn target(path: &str) -> Result<Target, String> {
    if path == "-" {
        return Ok(Target::Stdout);
    }
    let p = Path::new(path);
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Err(format!("{path}: is a directory, not a file")),
        Ok(m) if m.is_file() => std::fs::canonicalize(p)
            .map(Target::File)
            .map_err(|e| format!("{path}: cannot be used: {e}")),
        Ok(_) => Ok(Target::Through(p.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_file(path).map(Target::File),
        Err(e) => Err(format!("{path}: cannot be used: {e}")),
    }
}

/// The path a new file named `path` would have: through any dangling symlinks to the name
/// they point at, in its directory's canonical form.
fn new_file(path: &str) -> Result<PathBuf, String> {
    let mut p = PathBuf::from(path);
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p).map_err(|e| format!("{path}: {e}"))?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return in_canonical_dir(path, &p),
        }
    }
    Err(format!("{path}: too many levels of symbolic links"))
}

/// `p` as its directory's canonical path joined with its name.
fn in_canonical_dir(path: &str, p: &Path) -> Result<PathBuf, String> {
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

/// What an output is, for comparing it with inputs and other outputs.
fn identity(target: &Target) -> PathBuf {
    match target {
        Target::File(p) => p.clone(),
        Target::Through(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
        Target::Stdout => PathBuf::from("-"),
    }
}

/// Checks, before anything runs, that every output can be written where it is asked for: its
/// directory exists and takes a new file (for a regular file), and no output is also an input
/// or another output.
pub fn check_outputs(inputs: &[&str], outputs: &[&str]) -> Result<(), String> {
    let inputs: Vec<PathBuf> = inputs
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut seen: Vec<PathBuf> = Vec::new();
    for out in outputs {
        let target = target(out)?;
        let id = identity(&target);
        if inputs.contains(&id) {
            return Err(format!(
                "{out}: is also an input; write the output elsewhere"
            ));
        }
        if seen.contains(&id) {
            return Err(format!("{out}: is given for two outputs"));
        }
        if let Target::File(file) = &target {
            // The directory takes a new file (so the write at the end will not fail on it).
            let probe = temporary(file);
            create_temporary(&probe, &[]).map_err(|e| format!("{out}: cannot write there: {e}"))?;
            remove_temporary(&probe);
        }
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

/// The temporaries that exist now, removed if the command is interrupted.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the temporaries when the command is interrupted (SIGINT, SIGTERM, SIGHUP), then
/// ends it with status 130. Called once, before any output is written.
pub fn remove_temporaries_on_interrupt() -> Result<(), String> {
    ctrlc::set_handler(|| {
        // Held until the process ends, so no temporary is created after the removal.
        let list = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
        for temp in list.iter() {
            let _ = std::fs::remove_file(temp);
        }
        std::process::exit(130);
    })
    .map_err(|e| format!("cannot handle interrupts: {e}"))
}

/// Creates the temporary `path` (which must not exist) holding `bytes`, flushed to the disk,
/// known to the interrupt handler from its creation on; removed again if the write fails.
fn create_temporary(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file = {
        let mut list = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        list.push(path.to_path_buf());
        file
    };
    let written = write_flushed(file, bytes);
    if written.is_err() {
        remove_temporary(path);
    }
    written
}

/// Writes `bytes` to `file` and flushes it to the disk.
fn write_flushed(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes the temporary `path` and forgets it.
fn remove_temporary(path: &Path) {
    let mut list = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::fs::remove_file(path);
    list.retain(|p| p != path);
}

/// Renames the temporary `temp` to `path` and forgets it.
fn rename_temporary(temp: &Path, path: &Path) -> std::io::Result<()> {
    let mut list = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::rename(temp, path)?;
    list.retain(|p| p != temp);
    Ok(())
}

/// Writes `bytes` through to a device, FIFO, socket or standard output.
fn write_through(target: &Target, bytes: &[u8]) -> std::io::Result<()> {
    match target {
        Target::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Target::Through(path) => {
            let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
            file.write_all(bytes)?;
            file.flush()
        }
        Target::File(_) => Ok(()),
    }
}

/// Writes every `(path, bytes)` (see the module docs): regular files to temporaries, then the
/// outputs written through, then each temporary renamed into place. On an error no regular
/// file has been renamed yet (or, if a rename fails, the remaining ones are not), and every
/// temporary is removed.
pub fn write_all(outputs: &[(&str, Vec<u8>)]) -> Result<(), String> {
    let mut temps: Vec<(PathBuf, PathBuf, &str)> = Vec::new();
    let result = write_each(outputs, &mut temps);
    for (temp, _, _) in &temps {
        remove_temporary(temp);
    }
    result
}

/// The steps of [`write_all`]; leaves in `temps` the temporaries not renamed.
fn write_each<'p>(
    outputs: &[(&'p str, Vec<u8>)],
    temps: &mut Vec<(PathBuf, PathBuf, &'p str)>,
) -> Result<(), String> {
    let cannot = |path: &str, e: std::io::Error| format!("{path}: cannot write: {e}");
    let mut through = Vec::new();
    for (path, bytes) in outputs {
        match target(path)? {
            Target::File(file) => {
                let temp = temporary(&file);
                create_temporary(&temp, bytes).map_err(|e| cannot(path, e))?;
                temps.push((temp, file, path));
            }
            other => through.push((other, path, bytes)),
        }
    }
    for (target, path, bytes) in through {
        write_through(&target, bytes).map_err(|e| cannot(path, e))?;
    }
    while !temps.is_empty() {
        let (temp, file, path) = &temps[0];
        rename_temporary(temp, file).map_err(|e| cannot(path, e))?;
        temps.remove(0);
    }
    Ok(())
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
