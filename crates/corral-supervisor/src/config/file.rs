//! Reading the config file itself, in bounded time and memory: a config is
//! a regular file of at most [`MAX_CONFIG_BYTES`]. A FIFO would block the
//! read until a writer comes, `/dev/zero` would never end, and a directory
//! has no text; each is refused with one line before a byte is read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The largest config accepted: 1 MiB, a thousand times a large real one,
/// and small enough that a mistaken path costs nothing to refuse.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The file's bytes, or one line that says why there are none.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    // Checked before the open: opening a FIFO for reading blocks until a
    // writer appears. What remains is a FIFO swapped in between this check
    // and the open, which only the config's own owner can do.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the config: {e}"))?;
    refuse_unless_regular(&meta)?;
    let file = File::open(path).map_err(|e| format!("cannot read the config: {e}"))?;
    // The open file is the one read: checked again, whatever the path now names.
    let meta = file.metadata().map_err(|e| format!("cannot read the config: {e}"))?;
    refuse_unless_regular(&meta)?;
    let mut out = Vec::new();
    // One byte more than allowed tells "too big" apart from "exactly the
    // maximum", and a file that grows while it is read is still bounded.
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut out).map_err(|e| format!("cannot read the config: {e}"))?;
    if out.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    Ok(out)
}

fn refuse_unless_regular(meta: &std::fs::Metadata) -> Result<(), String> {
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() { "a directory" } else { "not a regular file (a FIFO, a device or a socket)" };
        return Err(format!("the config is {what}: give the path of a corral.toml file"));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    Ok(())
}

fn too_big() -> String {
    format!(
        "the config is larger than {} KiB: a corral.toml is text of a few KiB; check the path",
        MAX_CONFIG_BYTES >> 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("corral-config-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = temp("regular");
        let path = dir.join("corral.toml");
        std::fs::write(&path, "[services.a]\n").unwrap();
        assert_eq!(read(&path).unwrap(), b"[services.a]\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_and_a_device_are_refused() {
        let dir = temp("dir");
        assert!(read(&dir).unwrap_err().contains("is a directory"));
        std::fs::remove_dir_all(&dir).unwrap();
        if cfg!(unix) {
            let e = read(Path::new("/dev/zero")).unwrap_err();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = temp("big");
        let path = dir.join("corral.toml");
        std::fs::write(&path, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        assert!(read(&path).unwrap_err().contains("larger than 1024 KiB"));
        std::fs::write(&path, vec![b'#'; MAX_CONFIG_BYTES as usize]).unwrap();
        assert_eq!(read(&path).unwrap().len() as u64, MAX_CONFIG_BYTES);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
