//! `corral completions SHELL` and `corral manpage [--dir DIR]`: both are
//! generated from the clap definition itself (`clap_complete`,
//! `clap_mangen`), so a new verb or flag is completed and documented
//! without anyone keeping a second copy of the CLI in sync.

use clap::{Args, CommandFactory, ValueEnum};
use std::path::{Path, PathBuf};

/// The shells a completion script can be written for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// `source <(corral completions bash)`
    Bash,
    /// A `_corral` file for a folder in `$fpath`.
    Zsh,
    /// `corral completions fish > ~/.config/fish/completions/corral.fish`
    Fish,
    /// `corral completions powershell | Out-String | Invoke-Expression`
    Powershell,
}

/// `corral completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `corral manpage [--dir DIR]`.
#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// Write `corral.1` and one `corral-VERB.1` per verb into DIR (created
    /// if missing) instead of printing `corral.1` on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script.
pub fn completions(a: CompletionsArgs) -> u8 {
    use clap_complete::Shell as S;
    let shell = match a.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut crate::Cli::command(), "corral", &mut out);
    crate::exit::print(&String::from_utf8_lossy(&out))
}

/// Prints `corral.1`, or writes every page into `--dir`.
pub fn manpage(a: ManpageArgs) -> u8 {
    // As clap_mangen's pages have it: `help` is no verb of its own.
    let cmd = crate::Cli::command().disable_help_subcommand(true);
    let Some(dir) = a.dir else {
        return match render(&cmd) {
            Ok(page) => crate::exit::print(&String::from_utf8_lossy(&page)),
            Err(e) => fail(e),
        };
    };
    match write_pages(&cmd, &dir) {
        Ok(n) => {
            println!("wrote {n} man pages to {}", dir.display());
            0
        }
        Err(e) => fail(e),
    }
}

fn fail(e: std::io::Error) -> u8 {
    crate::exit::error(format!("cannot write the man pages: {e}"));
    crate::exit::FAILURE
}

fn render(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    Ok(out)
}

/// `corral.1`, then `corral-VERB.1` for every visible verb, nested
/// verbs too (git's layout: `man corral-up`). The folder is the caller's:
/// pages are created or replaced in it, and its mode is left alone.
fn write_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd.clone(), dir)?;
    Ok(count_pages(cmd))
}

fn count_pages(cmd: &clap::Command) -> usize {
    1 + cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").map(count_pages).sum::<usize>()
}
