//! A minimal batch receiver speaking the sensor's ingest protocol (the one the aggregator
//! serves): checks the bearer token, decodes with `teiten-wire`, deduplicates by batch id and
//! answers an `Ack`. Sensor tests use it to observe exactly what arrives and in what order;
//! the aggregator's own tests and the end-to-end tests use the real aggregator.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use teiten_wire::{decode, Ack, AckStatus, BatchId, Event, Limits, INGEST_PATH};

/// What the receiver has seen.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Stored batches in arrival order, with their event counts.
    pub batches: Vec<(BatchId, usize)>,
    /// Stored events in arrival order.
    pub events: Vec<Event>,
    /// Re-sent batches that were acknowledged without being stored again.
    pub duplicates: u64,
    /// Requests refused for a wrong token.
    pub unauthorized: u64,
    /// Acknowledgements still to be lost on purpose (the batch is stored, the answer is 503).
    pub lose_acks: u32,
}

/// A running receiver; stops on drop.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<Received>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `addr` (port 0 for any) and accepts batches carrying `token`.
    pub fn start(addr: SocketAddr, token: &str) -> Receiver {
        let server = Arc::new(tiny_http::Server::http(addr).expect("receiver binds"));
        let addr = server.server_addr().to_ip().expect("IP listener");
        let state = Arc::new(Mutex::new(Received::default()));
        let (srv, st, token) = (Arc::clone(&server), Arc::clone(&state), token.to_owned());
        let thread = std::thread::spawn(move || {
            let mut seen = HashSet::new();
            for mut req in srv.incoming_requests() {
                let auth_ok = req.headers().iter().any(|h| {
                    h.field.equiv("Authorization") && h.value == format!("Bearer {token}")
                });
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let (status, text) = if req.url() != INGEST_PATH {
                    (404, "not found".to_owned())
                } else if !auth_ok {
                    st.lock().unwrap().unauthorized += 1;
                    (401, "unknown sensor token".to_owned())
                } else {
                    match decode(&body, Limits::default()) {
                        Err(e) => (400, e.to_string()),
                        Ok(batch) => {
                            let mut s = st.lock().unwrap();
                            let fresh = seen.insert(batch.id.clone());
                            let n = batch.events.len();
                            if fresh {
                                s.batches.push((batch.id.clone(), n));
                                s.events.extend(batch.events);
                            } else {
                                s.duplicates += 1;
                            }
                            if s.lose_acks > 0 {
                                s.lose_acks -= 1;
                                (503, "acknowledgement lost on purpose".to_owned())
                            } else {
                                let ack = Ack {
                                    seq: batch.id.seq,
                                    status: if fresh {
                                        AckStatus::Stored
                                    } else {
                                        AckStatus::Duplicate
                                    },
                                    stored: if fresh { n as u64 } else { 0 },
                                };
                                (200, serde_json::to_string(&ack).unwrap())
                            }
                        }
                    }
                };
                let _ =
                    req.respond(tiny_http::Response::from_string(text).with_status_code(status));
            }
        });
        Receiver {
            addr,
            state,
            server,
            thread: Some(thread),
        }
    }

    /// A copy of what has arrived.
    pub fn received(&self) -> Received {
        self.state.lock().unwrap().clone()
    }

    /// Loses the next `n` acknowledgements (stores the batch, answers 503).
    pub fn lose_acks(&self, n: u32) {
        self.state.lock().unwrap().lose_acks = n;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
