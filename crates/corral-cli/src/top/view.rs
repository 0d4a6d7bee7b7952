//! What `corral top` shows, and how: the services table on top, the
//! selected instance's tree and log tail side by side below, a key line at
//! the bottom, and `?` for help.

use super::feed::Msg;
use corral::units::{format_duration, format_size};
use corral_supervisor::tree::{Placement, Tree};
use corral_supervisor::{InstanceStatus, State};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use std::time::Duration;

const HELP: &str = "\
corral top

  ↑ ↓  j k   select an instance
  s          start its service
  x          stop its service
  r          restart its service
  d          dump its service (state_dir/dumps)
  ?          this help
  q  Esc     quit

The table follows the daemon's event stream and is read again
every --refresh anyway. Below: the selected instance's process
tree (every member of its group, each under the process that
started it) and the tail of its service's logs.

Any key closes this help.";

#[derive(Default)]
pub struct App {
    rows: Vec<InstanceStatus>,
    selected: usize,
    error: Option<String>,
    tree: Option<Result<Tree, String>>,
    logs: Vec<String>,
    pub note: String,
    pub help: bool,
}

impl App {
    pub fn take(&mut self, m: Msg) {
        match m {
            Msg::Status(Ok(rows)) => {
                // Keep the same instance selected when rows come and go.
                let key = self.selected_key();
                self.rows = rows;
                if let Some(k) = key {
                    if let Some(i) = self.rows.iter().position(|r| (r.service.clone(), r.instance) == k) {
                        self.selected = i;
                    }
                }
                self.selected = self.selected.min(self.rows.len().saturating_sub(1));
                self.error = None;
            }
            Msg::Status(Err(e)) => self.error = Some(e),
            Msg::Tree(t) => self.tree = t,
            Msg::Logs(l) => self.logs = l,
            Msg::Note(n) => self.note = n,
        }
    }

    pub fn selected_key(&self) -> Option<(String, u32)> {
        self.rows.get(self.selected).map(|r| (r.service.clone(), r.instance))
    }

    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    pub fn down(&mut self) {
        if self.selected + 1 < self.rows.len() {
            self.selected += 1;
        }
    }
}

pub fn draw(f: &mut Frame, app: &App) {
    let table_h = (app.rows.len() as u16 + 3).clamp(4, f.area().height / 2);
    let [top, middle, bottom] =
        Layout::vertical([Constraint::Length(table_h), Constraint::Min(4), Constraint::Length(1)]).areas(f.area());
    services(f, app, top);
    let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    tree(f, app, left);
    logs(f, app, right);
    let keys = "q quit  ? help  ↑↓ select  s start  x stop  r restart  d dump";
    let line = match (&app.error, app.note.is_empty()) {
        (Some(e), _) => format!("{keys}  │ daemon: {e}"),
        (None, false) => format!("{keys}  │ {}", app.note),
        (None, true) => keys.to_string(),
    };
    f.render_widget(Paragraph::new(line), bottom);
    if app.help {
        let area = centered(f.area(), 66, 20);
        f.render_widget(Clear, area);
        f.render_widget(Paragraph::new(HELP).block(Block::default().borders(Borders::ALL).title(" help ")), area);
    }
}

fn services(f: &mut Frame, app: &App, area: Rect) {
    let header = Row::new(["SERVICE", "INST", "STATE", "READY", "PID", "RESTARTS", "CPU", "MEM"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = app.rows.iter().map(|i| {
        Row::new(vec![
            i.service.clone(),
            i.instance.to_string(),
            i.state.to_string(),
            if i.state == State::Running {
                if i.ready {
                    "yes"
                } else {
                    "no"
                }
            } else {
                "-"
            }
            .to_string(),
            i.pid.map_or("-".into(), |p| p.to_string()),
            i.restarts.to_string(),
            i.cpu_ms.map_or("-".into(), |m| format_duration(Duration::from_millis(m))),
            i.memory_bytes.map_or("-".into(), format_size),
        ])
    });
    let name = app.rows.iter().map(|i| i.service.chars().count()).max().unwrap_or(0).clamp(7, 40) as u16;
    let widths = [
        Constraint::Length(name + 1),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(10),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(" services "))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected((!app.rows.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn tree(f: &mut Frame, app: &App, area: Rect) {
    let title = match app.selected_key() {
        Some((s, i)) => format!(" tree: {s}.{i} "),
        None => " tree ".into(),
    };
    let lines: Vec<Line> = match &app.tree {
        None => vec![Line::from("no instance selected")],
        Some(Err(e)) => vec![Line::from(e.clone())],
        Some(Ok(t)) => tree_lines(t).into_iter().map(Line::from).collect(),
    };
    f.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)), area);
}

/// The tree as indented lines: pid, command, usage, and how it got there.
pub fn tree_lines(t: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let all_kids = t.kids();
    let mut stack: Vec<(usize, String, bool, bool)> =
        t.roots().into_iter().rev().map(|r| (r, String::new(), true, true)).collect();
    while let Some((i, prefix, last, root)) = stack.pop() {
        let m = &t.members[i];
        let branch = if root {
            ""
        } else if last {
            "└─ "
        } else {
            "├─ "
        };
        // What it is comes before the command, which the panel may cut.
        let mut line = format!("{prefix}{branch}{} ", m.pid);
        if let Some(end) = m.ending() {
            line.push_str(&format!("[{end}] "));
        } else if let (Some(c), Some(r)) = (m.cpu_ms, m.rss_bytes) {
            line.push_str(&format!("{} {} ", format_duration(Duration::from_millis(c)), format_size(r)));
        }
        if m.placement == Placement::Reparented {
            line.push_str("(re-parented) ");
        }
        line.push_str(&m.cmd);
        out.push(line);
        let kids = &all_kids[i];
        let next = if root { prefix.clone() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
        for (k, c) in kids.iter().enumerate().rev() {
            stack.push((*c, next.clone(), k + 1 == kids.len(), false));
        }
    }
    out.push(format!("# {}", t.note));
    out
}

fn logs(f: &mut Frame, app: &App, area: Rect) {
    let room = area.height.saturating_sub(2) as usize;
    let from = app.logs.len().saturating_sub(room);
    let lines: Vec<Line> = app.logs[from..].iter().map(|l| Line::from(l.as_str())).collect();
    f.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" logs ")), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}
