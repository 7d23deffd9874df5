//! Liveness of the nodes of a cluster, so that a node killed without a word
//! still takes its users offline.
//!
//! Every node, every sixth of the presence timeout: beats (records Redis's
//! time against its id), retries the steps Redis missed, and sweeps the
//! nodes silent for half the timeout. A node killed right after a beat is
//! swept at most half a timeout plus one beat later (two thirds of the
//! timeout), leaving a third for a slow sweep. The sweep is one Lua script,
//! so when several nodes sweep at once one of them does the work and
//! announces each transition; the others find nothing.
//!
//! A node that was only cut off from Redis for that long is swept too: its
//! users go offline for the others. When its beat gets through again it
//! finds itself unregistered and puts its users back (they go online again).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use super::store::Store;
use super::{lock, Inner, Presence};

/// The beat of this node, for the application's tasks (`tasks`). It also
/// ends when the presence service is gone.
pub fn beat(
    presence: &Presence,
    timeout: Duration,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let service: Weak<Inner> = Arc::downgrade(&presence.inner);
    let every = timeout / 6;
    let dead_after = timeout / 2;
    async move {
        let mut registered = false;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = service.upgrade() else {
                return;
            };
            Presence { inner }.tick(&mut registered, dead_after).await;
        }
    }
}

impl Presence {
    async fn tick(&self, registered: &mut bool, dead_after: Duration) {
        let Store::Redis(store) = &self.inner.store else {
            return;
        };
        match store.beat().await {
            Ok(true) if *registered => {
                let held: Vec<Uuid> = lock(&self.inner.held).iter().copied().collect();
                tracing::warn!(
                    users = held.len(),
                    "this node had been swept as dead (cut off from Redis?); putting its users back"
                );
                for user in held {
                    self.refresh(user).await;
                }
            }
            Ok(_) => *registered = true,
            Err(err) => {
                // The bus logs the outage itself; nothing below can work now.
                tracing::debug!(error = %err, "presence beat missed");
                return;
            }
        }
        let unsettled: Vec<Uuid> = lock(&self.inner.unsettled).drain().collect();
        for user in unsettled {
            self.refresh(user).await;
        }
        match store.sweep(dead_after, None).await {
            Ok(sweep) => {
                if !sweep.dead_nodes.is_empty() {
                    tracing::warn!(
                        nodes = ?sweep.dead_nodes,
                        users_offline = sweep.went_offline.len(),
                        "swept silent nodes"
                    );
                }
                for transition in sweep.went_offline {
                    self.announce(transition).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "sweep of silent nodes failed"),
        }
    }

    /// Takes this node out of the cluster's presence at shutdown, once its
    /// sockets are closed, instead of leaving the others to sweep it later.
    pub async fn depart(&self) {
        let Store::Redis(store) = &self.inner.store else {
            return;
        };
        match store.sweep(Duration::ZERO, Some(self.inner.node_id)).await {
            Ok(sweep) => {
                for transition in sweep.went_offline {
                    self.announce(transition).await;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not leave the cluster's presence; the others will sweep this node")
            }
        }
    }
}
