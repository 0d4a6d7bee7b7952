//! The daemon, as `corral top` sees it: a thread with a small runtime that
//! reads the status when the event stream says something changed (at most
//! every [`DEBOUNCE`]) and every `refresh` anyway, the selected instance's
//! tree and log tail with it, and carries out the actions asked for.

use corral_supervisor::client::Client;
use corral_supervisor::tree::Tree;
use corral_supervisor::InstanceStatus;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Events closer together than this cause one read.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Log lines shown for the selected service.
pub const LOG_LINES: usize = 200;
/// The wait before the event stream is opened again after it ended.
const RECONNECT: Duration = Duration::from_secs(1);

/// What the feed tells the screen.
pub enum Msg {
    Status(Result<Vec<InstanceStatus>, String>),
    Tree(Option<Result<Tree, String>>),
    Logs(Vec<String>),
    Note(String),
}

/// The screen's handle on the feed.
pub struct Feed {
    pub rx: mpsc::Receiver<Msg>,
    selected: Arc<Mutex<Option<(String, u32)>>>,
    acts: tokio::sync::mpsc::UnboundedSender<(&'static str, String)>,
    poke: Arc<Notify>,
}

impl Feed {
    /// Which instance the tree and logs are about; a change reads them now.
    pub fn select(&self, key: Option<(String, u32)>) {
        let mut s = self.selected.lock().unwrap_or_else(|p| p.into_inner());
        if *s != key {
            *s = key;
            self.poke.notify_one();
        }
    }

    pub fn act(&self, action: &'static str, service: String) {
        let _ = self.acts.send((action, service));
    }
}

pub fn start(client: Client, refresh: Duration) -> Feed {
    let (tx, rx) = mpsc::channel();
    let (acts, mut act_rx) = tokio::sync::mpsc::unbounded_channel();
    let selected = Arc::new(Mutex::new(None));
    let poke = Arc::new(Notify::new());
    let feed = Feed { rx, selected: selected.clone(), acts, poke: poke.clone() };
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            tokio::spawn(watch_events(client.clone(), poke.clone()));
            let mut tick = tokio::time::interval(refresh);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = poke.notified() => tokio::time::sleep(DEBOUNCE).await,
                    a = act_rx.recv() => {
                        let Some((action, service)) = a else { return };
                        let note = act(&client, action, &service).await;
                        if tx.send(Msg::Note(note)).is_err() {
                            return;
                        }
                    }
                }
                let key = selected.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if read(&client, key, &tx).await.is_err() {
                    return;
                }
            }
        });
    });
    feed
}

/// Pokes the reader on every chunk of the event stream; reopens it when
/// it ends (a restarted daemon).
async fn watch_events(client: Client, poke: Arc<Notify>) {
    loop {
        let _ = client
            .stream("GET", "/v1/events/stream", |_| {
                poke.notify_one();
                true
            })
            .await;
        tokio::time::sleep(RECONNECT).await;
    }
}

/// One round: status, then the selected instance's tree and logs. `Err`
/// once the screen is gone.
async fn read(client: &Client, key: Option<(String, u32)>, tx: &mpsc::Sender<Msg>) -> Result<(), ()> {
    let status = match client.request("GET", "/v1/services").await {
        Ok(r) if r.status < 400 => serde_json::from_value(r.json()["instances"].clone()).map_err(|e| e.to_string()),
        Ok(r) => Err(refusal(&r)),
        Err(e) => Err(e.to_string()),
    };
    tx.send(Msg::Status(status)).map_err(|_| ())?;
    let Some((service, index)) = key else { return tx.send(Msg::Tree(None)).map_err(|_| ()) };
    let tree = match client.request("GET", &format!("/v1/services/{service}/tree?instance={index}")).await {
        Ok(r) if r.status < 400 => serde_json::from_slice(&r.body).map_err(|e| e.to_string()),
        Ok(r) => Err(refusal(&r)),
        Err(e) => Err(e.to_string()),
    };
    tx.send(Msg::Tree(Some(tree))).map_err(|_| ())?;
    let logs = match client.request("GET", &format!("/v1/logs?service={service}&n={LOG_LINES}")).await {
        Ok(r) if r.status < 400 => String::from_utf8_lossy(&r.body).lines().map(str::to_string).collect(),
        Ok(r) => vec![refusal(&r)],
        Err(e) => vec![e.to_string()],
    };
    tx.send(Msg::Logs(logs)).map_err(|_| ())
}

async fn act(client: &Client, action: &str, service: &str) -> String {
    match client.request("POST", &format!("/v1/services/{service}/{action}")).await {
        Ok(r) if r.status < 400 => format!("{action} {service}: done"),
        Ok(r) => format!("{action} {service}: {}", refusal(&r)),
        Err(e) => format!("{action} {service}: {e}"),
    }
}

fn refusal(r: &corral_supervisor::client::Reply) -> String {
    r.json()["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {}", r.status))
}
