//! prepare's results as each host finishes, while prepare still runs on the others in
//! its own thread: `up` starts init once the first control plane is prepared and each
//! join once its host is, instead of waiting for the slowest host.

use crate::playbook::run::Event;
use crate::playbook::{Facts, HostReport};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender};

/// What the prepare thread tells `up`.
pub(super) enum Message {
    /// A host's facts (its first round trip), long before its steps are done.
    Facts(String, Box<Facts>),
    /// A host is done (prepared, failed or unreachable).
    Done(Box<HostReport>),
}

/// The tap for [`crate::prepare::prepare_hosts_tapped`]: facts and ends to `tx`.
pub(super) fn tap(tx: Sender<Message>) -> impl Fn(&str, &Event<'_>) + Sync {
    move |host, event| {
        let m = match event {
            Event::Facts(f) => Message::Facts(host.to_string(), Box::new((*f).clone())),
            Event::Finished(r) => Message::Done(Box::new((*r).clone())),
            _ => return,
        };
        // The receiver may be gone when up stopped early: nothing to tell then.
        let _ = tx.send(m);
    }
}

/// The receiving end: the facts known so far, reports not yet taken, and whether the
/// prepare thread has ended.
pub(super) struct Prepared {
    rx: Receiver<Message>,
    /// Every host whose facts arrived, in arrival order.
    pub(super) facts: Vec<(String, Facts)>,
    /// Hosts done (in arrival order), not yet taken by [`Prepared::next`].
    done: VecDeque<HostReport>,
    /// Names of every host done so far.
    finished: Vec<String>,
    ended: bool,
}

impl Prepared {
    pub(super) fn new(rx: Receiver<Message>) -> Self {
        Prepared {
            rx,
            facts: Vec::new(),
            done: VecDeque::new(),
            finished: Vec::new(),
            ended: false,
        }
    }

    /// Waits for one more message; false when prepare has ended.
    fn receive(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match self.rx.recv() {
            Ok(Message::Facts(h, f)) => self.facts.push((h, *f)),
            Ok(Message::Done(r)) => {
                self.finished.push(r.host.clone());
                self.done.push_back(*r);
            }
            Err(_) => self.ended = true,
        }
        !self.ended
    }

    /// Waits until `host` is done and every host in `all` has its facts known or is done
    /// (facts come in every host's first round trip); false if prepare ended first.
    pub(super) fn wait_for(&mut self, host: &str, all: &[String]) -> bool {
        loop {
            let known =
                |n: &String| self.finished.contains(n) || self.facts.iter().any(|(h, _)| h == n);
            if self.finished.iter().any(|n| n == host) && all.iter().all(known) {
                return true;
            }
            if !self.receive() {
                return false;
            }
        }
    }

    /// The next host already done, without waiting.
    pub(super) fn next_ready(&mut self) -> Option<HostReport> {
        self.done.pop_front()
    }

    /// The next host done, in the order they finished, waiting for it; `None` once
    /// every host has been taken and prepare has ended.
    pub(super) fn next(&mut self) -> Option<HostReport> {
        loop {
            if let Some(r) = self.done.pop_front() {
                return Some(r);
            }
            if !self.receive() {
                return None;
            }
        }
    }
}
