//! The simulated serving engine: a scheduler step loop with continuous batching, a KV-cache block
//! pool with recompute preemption, and a prefix cache.
//!
//! - **Admission**: waiting requests join the running batch, oldest first, while there are batch
//!   slots (`max_batch`) and free blocks for their prompt (plus the tokens generated before a
//!   preemption) and one more token.
//! - **Blocks** (16 tokens each) are taken as a request grows: a decode step that fills a
//!   request's last block needs a new one. When none is free, the most recently admitted request
//!   is preempted (vLLM's recompute policy): its blocks are freed, it goes back to the front of
//!   the queue, and on re-admission it prefills its prompt and what it had generated again.
//! - **Prefix cache**: each full 16-token block of a prompt is keyed by a hash chained over the
//!   blocks before it; a prompt's leading blocks seen before count as hits and are not prefilled
//!   again (the cache holds as many block keys as the pool has blocks, oldest evicted first).
//!   Cached blocks still take pool space per request: the simulation does not share them.
//! - **Step time** stands for GPU time, as a timed wait: 4 ms per decode step plus 1 ms and
//!   20 µs per prompt token prefilled in that step.
//! - A request whose handler is gone (the client disconnected) is dropped at the next step and
//!   its blocks freed.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use crate::telemetry::{EngineState, EngineTelemetry};

/// Tokens per KV-cache block.
pub const BLOCK_TOKENS: u64 = 16;

/// What the engine sends a request's handler.
pub enum Out {
    Scheduled,
    /// The token's index (from 1) and id.
    Token(u64, u32),
    Done(&'static str),
}

/// One request as the engine sees it.
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: u64,
    pub out: mpsc::UnboundedSender<Out>,
    /// Tokens generated so far (kept across a preemption).
    generated: u64,
    scheduled_sent: bool,
}

impl Job {
    pub fn new(prompt: Vec<u32>, max_tokens: u64, out: mpsc::UnboundedSender<Out>) -> Job {
        Job {
            prompt,
            max_tokens,
            out,
            generated: 0,
            scheduled_sent: false,
        }
    }

    fn context(&self) -> u64 {
        self.prompt.len() as u64 + self.generated
    }
}

struct Running {
    job: Job,
    blocks: u64,
}

/// The prefix cache's block keys, oldest first.
struct PrefixCache {
    keys: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl PrefixCache {
    /// Chained keys of the prompt's full blocks.
    fn keys(prompt: &[u32]) -> Vec<u64> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        prompt
            .chunks_exact(BLOCK_TOKENS as usize)
            .map(|block| {
                block.hash(&mut h);
                h.finish()
            })
            .collect()
    }

    /// Tokens of `prompt` found cached (leading blocks only); then caches all its blocks.
    fn lookup_insert(&mut self, prompt: &[u32]) -> u64 {
        let keys = Self::keys(prompt);
        let hits = keys.iter().take_while(|k| self.keys.contains(k)).count() as u64;
        for k in keys {
            if self.keys.insert(k) {
                self.order.push_back(k);
                if self.order.len() > self.capacity
                    && let Some(old) = self.order.pop_front()
                {
                    self.keys.remove(&old);
                }
            }
        }
        hits * BLOCK_TOKENS
    }
}

/// The engine's queue and pool, shared with the scheduler loop.
pub struct Engine<E> {
    waiting: Mutex<VecDeque<Job>>,
    serving: E,
    max_batch: usize,
    kv_blocks: u64,
    prefix: std::sync::Mutex<PrefixCache>,
}

fn blocks_for(tokens: u64) -> u64 {
    tokens.div_ceil(BLOCK_TOKENS).max(1)
}

impl<E: EngineTelemetry> Engine<E> {
    pub fn new(serving: E, max_batch: usize, kv_blocks: u64) -> Arc<Engine<E>> {
        Arc::new(Engine {
            waiting: Mutex::new(VecDeque::new()),
            serving,
            max_batch: max_batch.max(1),
            kv_blocks: kv_blocks.max(1),
            prefix: std::sync::Mutex::new(PrefixCache {
                keys: HashSet::new(),
                order: VecDeque::new(),
                capacity: kv_blocks.max(1) as usize,
            }),
        })
    }

    /// The most tokens (prompt + output) one request can hold: the whole pool.
    pub fn capacity_tokens(&self) -> u64 {
        self.kv_blocks * BLOCK_TOKENS
    }

    pub async fn submit(&self, job: Job) {
        self.waiting.lock().await.push_back(job);
    }

    /// The scheduler loop.
    pub async fn run(self: Arc<Self>) {
        let mut running: Vec<Running> = Vec::new();
        let mut used = 0u64;
        loop {
            let mut prefill = 0u64;
            {
                let mut waiting = self.waiting.lock().await;
                while running.len() < self.max_batch {
                    let Some(job) = waiting.front() else { break };
                    if job.out.is_closed() {
                        waiting.pop_front();
                        continue;
                    }
                    let blocks = blocks_for(job.context() + 1);
                    if used + blocks > self.kv_blocks {
                        break;
                    }
                    let mut job = waiting.pop_front().expect("front exists");
                    let cached = if job.generated == 0 {
                        let hit = self
                            .prefix
                            .lock()
                            .map(|mut p| p.lookup_insert(&job.prompt))
                            .unwrap_or(0);
                        self.serving.prefix_cache(job.prompt.len() as u64, hit);
                        hit
                    } else {
                        0
                    };
                    if !job.scheduled_sent {
                        job.scheduled_sent = true;
                        let _ = job.out.send(Out::Scheduled);
                    }
                    prefill += job.context().saturating_sub(cached);
                    used += blocks;
                    running.push(Running { job, blocks });
                }
                self.serving.state(EngineState {
                    kv_blocks_used: used,
                    kv_blocks_total: self.kv_blocks,
                    running: running.len() as u64,
                    waiting: waiting.len() as u64,
                });
            }
            if running.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            let step = Duration::from_millis(4) + Duration::from_micros(1000 + 20 * prefill);
            tokio::time::sleep(step).await;
            self.serving.step_tokens(prefill + running.len() as u64);
            self.decode_step(&mut running, &mut used).await;
        }
    }

    /// One token for every running request; blocks grow, and run out into preemptions.
    async fn decode_step(&self, running: &mut Vec<Running>, used: &mut u64) {
        let mut i = 0;
        while i < running.len() {
            let r = &mut running[i];
            r.job.generated += 1;
            let n = r.job.generated;
            let id = (n as u32).wrapping_mul(2_654_435_761) % 50_257;
            let alive = r.job.out.send(Out::Token(n, id)).is_ok();
            let finished = n >= r.job.max_tokens;
            if finished {
                let _ = r.job.out.send(Out::Done("length"));
            }
            if finished || !alive {
                *used -= r.blocks;
                running.remove(i);
                continue;
            }
            // The next token needs room: a new block when this one is full.
            let need = blocks_for(r.job.context() + 1);
            if need > r.blocks {
                while *used >= self.kv_blocks && running.len() > i + 1 {
                    self.preempt(running, used).await;
                }
                let r = &mut running[i];
                if *used >= self.kv_blocks {
                    // Only this request is left to give way: it goes back to the queue.
                    let victim = running.remove(i);
                    *used -= victim.blocks;
                    self.requeue(victim).await;
                    continue;
                }
                r.blocks += 1;
                *used += 1;
            }
            i += 1;
        }
    }

    /// Preempts the most recently admitted request (the last one).
    async fn preempt(&self, running: &mut Vec<Running>, used: &mut u64) {
        if let Some(victim) = running.pop() {
            *used -= victim.blocks;
            self.requeue(victim).await;
        }
    }

    async fn requeue(&self, victim: Running) {
        self.serving.preemptions(1);
        self.waiting.lock().await.push_front(victim.job);
    }
}
