//! `corral trace show FILE`: a lineage trace (from `corral run --trace` or
//! a service's `trace = true`) as a tree, processes already gone included.

use crate::exit;
use clap::{Parser, Subcommand};
use corral_supervisor::tree::render::{render, Format};
use corral_supervisor::tree::{trace_file, Tree};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Render a trace: every process it recorded, with its parent, command and exit status.
    Show(ShowArgs),
}

#[derive(Debug, Parser)]
pub struct ShowArgs {
    /// The trace file (JSON lines); FILE.1, its rotated part, is read first when present.
    file: PathBuf,
    /// text, json, dot (Graphviz), mermaid or svg.
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "text")]
    format: Format,
}

pub fn main(cmd: Cmd) -> u8 {
    match cmd {
        Cmd::Show(a) => match trace_file::read(&a.file) {
            Ok(l) => exit::print(&render(&Tree::from_lineage(&l), a.format)),
            Err(e) => {
                exit::error(e);
                1
            }
        },
    }
}
