//! `corral top`: the daemon's services in a terminal, refreshed from its
//! event stream (a change triggers a read) and a bounded periodic status
//! read; the selected instance's tree and the tail of its logs below; keys
//! for start, stop, restart and dump.
//!
//! Two threads: this one owns the terminal (ratatui over crossterm) and
//! the keys; `feed` talks to the daemon on a small runtime of its own, so
//! a slow daemon never freezes the screen.

mod feed;
mod view;

use crate::exit;
use crate::supervise::{self, Common};
use clap::Parser;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use std::io::IsTerminal;
use std::time::Duration;

/// The slowest and fastest periodic status read.
const REFRESH_MIN: Duration = Duration::from_millis(200);
const REFRESH_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// How often the status is read even without events (200ms to 60s).
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_refresh)]
    refresh: Duration,
}

fn parse_refresh(s: &str) -> Result<Duration, String> {
    let d = corral::units::parse_duration(s).map_err(|e| e.to_string())?;
    if d < REFRESH_MIN || d > REFRESH_MAX {
        return Err(format!("invalid refresh '{s}': expected 200ms to 60s"));
    }
    Ok(d)
}

pub fn main(a: Args) -> u8 {
    if !std::io::stdout().is_terminal() {
        exit::error("corral top needs a terminal; for a script use `corral status --json` or `corral events -f`");
        return supervise::FAILED;
    }
    let client = match supervise::client(&a.common) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let feed = feed::start(client, a.refresh);
    if let Err(e) = enter() {
        exit::error(format!("cannot set up the terminal: {e}"));
        return supervise::FAILED;
    }
    // The terminal is given back even when drawing panics.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        default_hook(info);
    }));
    let r = run(feed);
    leave();
    match r {
        Ok(()) => 0,
        Err(e) => {
            exit::error(format!("corral top: {e}"));
            supervise::FAILED
        }
    }
}

fn enter() -> std::io::Result<()> {
    terminal::enable_raw_mode()?;
    execute!(std::io::stdout(), EnterAlternateScreen)
}

fn leave() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen);
}

fn run(feed: feed::Feed) -> std::io::Result<()> {
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let mut term = ratatui::Terminal::new(backend)?;
    term.clear()?;
    let mut app = view::App::default();
    loop {
        while let Ok(msg) = feed.rx.try_recv() {
            app.take(msg);
        }
        feed.select(app.selected_key());
        term.draw(|f| view::draw(f, &app))?;
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        let Event::Key(k) = event::read()? else { continue };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        if app.help {
            app.help = false;
            continue;
        }
        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            _ if ctrl_c => return Ok(()),
            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
            KeyCode::Char('?') | KeyCode::Char('h') => app.help = true,
            KeyCode::Up | KeyCode::Char('k') => app.up(),
            KeyCode::Down | KeyCode::Char('j') => app.down(),
            KeyCode::Char(c) => {
                let action = match c {
                    's' => "start",
                    'x' => "stop",
                    'r' => "restart",
                    'd' => "dump",
                    _ => continue,
                };
                if let Some((service, _)) = app.selected_key() {
                    app.note = format!("{action} {service}…");
                    feed.act(action, service);
                }
            }
            _ => {}
        }
    }
}
