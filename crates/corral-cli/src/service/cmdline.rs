//! The service's command line: what the Service Control Manager runs,
//! quoted the way Windows programs split their arguments, and read back
//! to find the config a service was installed for.
//!
//! Pure string work, so it is tested on every platform.

use std::path::Path;

/// `"<exe>" service run -c "<config>"`. The program is always quoted: an
/// unquoted path with spaces lets `C:\Program.exe` take its place.
pub fn service_command(exe: &Path, config: &Path) -> String {
    format!("\"{}\" service run -c {}", exe.display(), quote(&config.display().to_string()))
}

/// One argument, quoted when it must be, for the rules of
/// `CommandLineToArgvW` and the C runtime: backslashes are literal except
/// before a quote, where they are doubled.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', 2 * backslashes + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    // Backslashes before the closing quote must not escape it.
    out.extend(std::iter::repeat_n('\\', 2 * backslashes));
    out.push('"');
    out
}

/// Splits a command line into arguments, as `CommandLineToArgvW` does:
/// the program ends at its closing quote (or at a space when unquoted),
/// the arguments follow the C runtime's backslash rules.
pub fn split(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    // The program: no escapes, a quote only toggles.
    let mut program = String::new();
    let mut quoted = false;
    while let Some(&c) = chars.peek() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && (c == ' ' || c == '\t') {
            break;
        } else {
            program.push(c);
        }
        chars.next();
    }
    args.push(program);
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            return args;
        }
        let mut arg = String::new();
        let mut quoted = false;
        let mut backslashes = 0usize;
        while let Some(&c) = chars.peek() {
            match c {
                '\\' => backslashes += 1,
                '"' => {
                    arg.extend(std::iter::repeat_n('\\', backslashes / 2));
                    if backslashes % 2 == 1 {
                        arg.push('"');
                    } else {
                        quoted = !quoted;
                    }
                    backslashes = 0;
                }
                ' ' | '\t' if !quoted => break,
                _ => {
                    arg.extend(std::iter::repeat_n('\\', backslashes));
                    arg.push(c);
                    backslashes = 0;
                }
            }
            chars.next();
        }
        arg.extend(std::iter::repeat_n('\\', backslashes));
        args.push(arg);
    }
}

/// The config of a command line made by [`service_command`]: the argument
/// after `-c`.
pub fn config_of(line: &str) -> Option<String> {
    let args = split(line);
    let at = args.iter().position(|a| a == "-c")?;
    args.get(at + 1).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_arguments_stay_as_they_are() {
        assert_eq!(quote(r"C:\corral\corral.toml"), r"C:\corral\corral.toml");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn spaces_quotes_and_trailing_backslashes_are_quoted() {
        assert_eq!(quote(r"C:\My Files\corral.toml"), r#""C:\My Files\corral.toml""#);
        assert_eq!(quote(r"C:\My Files\"), r#""C:\My Files\\""#);
        assert_eq!(quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote(r#"a\"b"#), r#""a\\\"b""#);
    }

    #[test]
    fn split_reads_back_what_quote_wrote() {
        for arg in [r"C:\x\y.toml", r"C:\My Files\", r#"say "hi""#, r#"a\"b"#, r"a\\b c", "", "\t"] {
            let line = format!("prog {} end", quote(arg));
            assert_eq!(split(&line), vec!["prog", arg, "end"], "{line}");
        }
    }

    #[test]
    fn the_program_is_quoted_and_the_config_found_again() {
        let line =
            service_command(Path::new(r"C:\Program Files\corral\corral.exe"), Path::new(r"D:\svc a\corral.toml"));
        assert_eq!(line, r#""C:\Program Files\corral\corral.exe" service run -c "D:\svc a\corral.toml""#);
        let args = split(&line);
        assert_eq!(args[0], r"C:\Program Files\corral\corral.exe");
        assert_eq!(&args[1..3], ["service", "run"]);
        assert_eq!(config_of(&line).as_deref(), Some(r"D:\svc a\corral.toml"));
        assert_eq!(config_of(r#""x.exe" service run"#), None);
    }
}
