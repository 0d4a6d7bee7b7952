//! What a measure reports: tables, verdicts against the goals of issue 6,
//! and the assembly of BENCHMARKS.md.

use std::fmt::Write as _;

/// A markdown table.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
}

/// One goal of issue 6 and how this run did against it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub measure: String,
    pub goal: String,
    pub result: String,
    /// None when the run could not decide (a peer or a feature missing).
    pub met: Option<bool>,
}

impl Verdict {
    pub fn new(measure: &str, goal: &str, result: String, met: Option<bool>) -> Verdict {
        Verdict { measure: measure.into(), goal: goal.into(), result, met }
    }
}

/// One measure's part of the report.
#[derive(Debug, Default)]
pub struct Section {
    pub title: String,
    pub body: String,
    pub verdicts: Vec<Verdict>,
    /// Extra files to write beside BENCHMARKS.md: (file name, contents).
    pub files: Vec<(String, String)>,
}

impl Section {
    pub fn new(title: &str) -> Section {
        Section { title: title.into(), ..Section::default() }
    }
    pub fn para(&mut self, text: &str) {
        self.body.push_str(text.trim_end());
        self.body.push_str("\n\n");
    }
    pub fn table(&mut self, t: &Table) {
        self.body.push_str(&t.markdown());
        self.body.push('\n');
    }
    pub fn markdown(&self) -> String {
        format!("## {}\n\n{}", self.title, self.body)
    }
}

pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let mut t = Table::new(&["#", "goal", "this run", "met?"]);
    for v in verdicts {
        let met = match v.met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "not decided",
        };
        t.row(vec![v.measure.clone(), v.goal.clone(), v.result.clone(), met.into()]);
    }
    t.markdown()
}
