//! The Windows half of the one event loop: one wait on the completion
//! port that every job of this process posts to (`port.rs`). Each packet
//! goes to the group whose key it carries, which reads it on its next
//! `wait`; a packet whose key names no group (it ended) is dropped.

use super::port::{self, KeyWake, Msg, Port, KEY_LOOP};
use super::Group;
use crate::sys::{Poll, Wake};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Poller {
    port: &'static Port,
}

impl Poll for Poller {
    fn new() -> io::Result<Poller> {
        Ok(Poller { port: port::shared()? })
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(KeyWake(KEY_LOOP))
    }

    fn wait(&mut self, groups: &[&Group], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
        let packets = self.port.wait(timeout)?;
        let mut news = vec![false; groups.len()];
        if packets.is_empty() {
            return Ok(news);
        }
        let by_key: HashMap<usize, usize> = groups.iter().enumerate().map(|(i, g)| (g.key(), i)).collect();
        for (key, msg) in packets {
            let Some(&i) = by_key.get(&key) else { continue };
            if msg != Msg::Wake {
                groups[i].deliver(msg);
            }
            news[i] = true;
        }
        Ok(news)
    }
}
