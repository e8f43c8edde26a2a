//! The process-wide queue of copy slots per destination account and Region (a
//! *pool*, named `account/region` by [`pool`]).
//!
//! FSx allows a handful of copies in progress per destination Region and account
//! (five by default). Every `FsxBackupCopy` object draws from the same slots, so the
//! operator hands them out here, fairly: a slot goes to the waiting object with the
//! fewest copies in flight, so one object with a long backlog cannot starve another.
//! FSx remains the final judge: a `ServiceLimitExceeded` (copies started outside the
//! operator, or right after a restart) just puts the copy back in the queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pool of copy slots of a destination: its account and Region, as FSx
/// counts copies in progress per account and Region.
pub fn pool(destination: &crate::fsx::Place) -> String {
    format!("{}/{}", destination.account(), destination.region)
}

/// `(account, region)` of a pool name made by [`pool`].
pub fn split_pool(pool: &str) -> (String, String) {
    let (account, region) = pool.split_once('/').unwrap_or(("", pool));
    (account.to_owned(), region.to_owned())
}

#[derive(Debug)]
struct RegionSlots<K> {
    /// Copies in progress per object, by source backup id.
    in_flight: BTreeMap<K, BTreeSet<String>>,
    /// Objects with copies waiting for a slot.
    waiting: BTreeSet<K>,
    /// Copies each object has queued, and since when it has had any.
    queued: BTreeMap<K, (usize, Instant)>,
    /// When each object was last granted a slot (a counter): among waiting objects
    /// holding as many slots, the one served longest ago goes first.
    last_grant: BTreeMap<K, u64>,
    grants: u64,
}

/// Queue figures of one destination Region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStats {
    pub in_flight: usize,
    pub queued: usize,
    /// How long the longest-waiting object has had copies queued.
    pub oldest_wait: Duration,
}

impl<K> Default for RegionSlots<K> {
    fn default() -> Self {
        Self {
            in_flight: BTreeMap::new(),
            waiting: BTreeSet::new(),
            queued: BTreeMap::new(),
            last_grant: BTreeMap::new(),
            grants: 0,
        }
    }
}

impl<K: Ord + Clone> RegionSlots<K> {
    fn total(&self) -> usize {
        self.in_flight.values().map(BTreeSet::len).sum()
    }

    fn held_by(&self, object: &K) -> usize {
        self.in_flight.get(object).map_or(0, BTreeSet::len)
    }
}

/// Copy slots of every destination Region, for objects identified by `K`.
#[derive(Debug)]
pub struct CopySlots<K> {
    limit: usize,
    regions: Mutex<HashMap<String, RegionSlots<K>>>,
}

impl<K: Ord + Clone> CopySlots<K> {
    /// `limit` copies in progress per destination Region (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            regions: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn with_region<T>(&self, region: &str, f: impl FnOnce(&mut RegionSlots<K>) -> T) -> T {
        let mut regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(regions.entry(region.to_owned()).or_default())
    }

    /// Records a copy already in progress (found in status after a restart).
    pub fn occupy(&self, region: &str, object: &K, source_backup_id: &str) {
        self.with_region(region, |slots| {
            slots
                .in_flight
                .entry(object.clone())
                .or_default()
                .insert(source_backup_id.to_owned());
        });
    }

    /// Takes a slot for copying `source_backup_id`, or queues `object` and says no.
    /// A slot is granted while the Region has one free and no waiting object holds
    /// fewer slots than `object`, or as many but was served longer ago (max-min
    /// fairness; ties go to the least recently served, whoever asks first).
    pub fn try_acquire(&self, region: &str, object: &K, source_backup_id: &str) -> bool {
        let limit = self.limit;
        self.with_region(region, |slots| {
            if slots
                .in_flight
                .get(object)
                .is_some_and(|held| held.contains(source_backup_id))
            {
                return true;
            }
            let mine = (
                slots.held_by(object),
                slots.last_grant.get(object).copied().unwrap_or(0),
            );
            let someone_ahead =
                slots
                    .waiting
                    .iter()
                    .filter(|other| *other != object)
                    .any(|other| {
                        (
                            slots.held_by(other),
                            slots.last_grant.get(other).copied().unwrap_or(0),
                        ) < mine
                    });
            if slots.total() >= limit || someone_ahead {
                slots.waiting.insert(object.clone());
                return false;
            }
            slots
                .in_flight
                .entry(object.clone())
                .or_default()
                .insert(source_backup_id.to_owned());
            slots.grants += 1;
            slots.last_grant.insert(object.clone(), slots.grants);
            true
        })
    }

    /// Gives a slot back (the copy finished, failed, or was refused by FSx).
    /// Returns the objects that wait for a slot and should be reconciled now.
    pub fn release(&self, region: &str, object: &K, source_backup_id: &str) -> Vec<K> {
        self.with_region(region, |slots| {
            if let Some(held) = slots.in_flight.get_mut(object) {
                held.remove(source_backup_id);
                if held.is_empty() {
                    slots.in_flight.remove(object);
                }
            }
            if slots.total() < self.limit {
                slots.waiting.iter().cloned().collect()
            } else {
                Vec::new()
            }
        })
    }

    /// `object` has nothing more waiting for a slot in `region`.
    pub fn done_waiting(&self, region: &str, object: &K) {
        self.with_region(region, |slots| {
            slots.waiting.remove(object);
        });
    }

    /// How many copies `object` has waiting for a slot in `region` now.
    pub fn report_queue(&self, region: &str, object: &K, count: usize) {
        self.with_region(region, |slots| {
            if count == 0 {
                slots.queued.remove(object);
            } else {
                let since = slots
                    .queued
                    .get(object)
                    .map_or_else(Instant::now, |(_, since)| *since);
                slots.queued.insert(object.clone(), (count, since));
            }
        });
    }

    /// Per destination Region: copies in flight, queued, and the oldest wait.
    pub fn queue_stats(&self) -> BTreeMap<String, QueueStats> {
        let regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        regions
            .iter()
            .map(|(region, slots)| {
                let stats = QueueStats {
                    in_flight: slots.total(),
                    queued: slots.queued.values().map(|(n, _)| n).sum(),
                    oldest_wait: slots
                        .queued
                        .values()
                        .map(|(_, since)| since.elapsed())
                        .max()
                        .unwrap_or_default(),
                };
                (region.clone(), stats)
            })
            .collect()
    }

    /// Forgets `object` everywhere (deleted); returns the objects to wake.
    pub fn forget(&self, object: &K) -> Vec<K> {
        let mut regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wake = BTreeSet::new();
        for slots in regions.values_mut() {
            slots.waiting.remove(object);
            slots.queued.remove(object);
            slots.last_grant.remove(object);
            if slots.in_flight.remove(object).is_some() {
                wake.extend(slots.waiting.iter().cloned());
            }
        }
        wake.into_iter().collect()
    }

    /// Copies in progress and objects waiting, per Region (for status and metrics).
    pub fn snapshot(&self) -> BTreeMap<String, (usize, usize)> {
        let regions = self
            .regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        regions
            .iter()
            .map(|(region, slots)| (region.clone(), (slots.total(), slots.waiting.len())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_limit_per_region() {
        let slots = CopySlots::new(5);
        let granted = (0..12)
            .filter(|i| slots.try_acquire("us-west-2", &"a", &format!("backup-{i}")))
            .count();
        assert_eq!(granted, 5);
        // Another Region has its own slots.
        assert!(slots.try_acquire("eu-west-1", &"a", "backup-x"));
        // Asking again for a copy already holding a slot is not a second slot.
        assert!(slots.try_acquire("us-west-2", &"a", "backup-0"));
        assert_eq!(slots.snapshot()["us-west-2"], (5, 1));
    }

    #[test]
    fn a_freed_slot_goes_to_the_waiting_object_with_fewer_copies() {
        let slots = CopySlots::new(5);
        for i in 0..5 {
            assert!(slots.try_acquire("r", &"a", &format!("a-{i}")));
        }
        assert!(!slots.try_acquire("r", &"b", "b-0"), "all slots taken");
        let wake = slots.release("r", &"a", "a-0");
        assert_eq!(wake, vec!["b"], "b waits and is woken");
        // `a` still has a backlog, but `b` holds fewer slots: `a` must wait its turn.
        assert!(!slots.try_acquire("r", &"a", "a-5"));
        assert!(slots.try_acquire("r", &"b", "b-0"));
        // Both wait; each freed slot alternates toward the poorer one.
        slots.release("r", &"a", "a-1");
        assert!(!slots.try_acquire("r", &"a", "a-5"), "a holds 3, b holds 1");
        assert!(slots.try_acquire("r", &"b", "b-1"));
        slots.release("r", &"a", "a-2");
        // a holds 2, b holds 2: a tie lets either go.
        assert!(slots.try_acquire("r", &"a", "a-5"));
    }

    #[test]
    fn simulated_backlogs_share_slots_and_nobody_starves() {
        let slots = CopySlots::new(5);
        let mut queues: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        queues.insert("big", (0..40).map(|i| format!("big-{i}")).collect());
        queues.insert("small", (0..6).map(|i| format!("small-{i}")).collect());
        let mut running: Vec<(&str, String)> = Vec::new();
        let mut order = Vec::new();
        for _tick in 0..200 {
            for (object, queue) in &mut queues {
                while let Some(next) = queue.first().cloned() {
                    if !slots.try_acquire("r", object, &next) {
                        break;
                    }
                    queue.remove(0);
                    order.push(*object);
                    running.push((*object, next));
                }
                if queue.is_empty() {
                    slots.done_waiting("r", object);
                }
            }
            assert!(slots.snapshot().get("r").is_none_or(|(n, _)| *n <= 5));
            if let Some((object, id)) = (!running.is_empty()).then(|| running.remove(0)) {
                slots.release("r", &object, &id);
            }
        }
        assert!(queues.values().all(Vec::is_empty), "everything copied");
        // `small` got its six copies early, not after the 40 of `big`.
        let last_small = order
            .iter()
            .rposition(|o| *o == "small")
            .expect("small ran");
        assert!(
            last_small < 20,
            "small finished at position {last_small}: {order:?}"
        );
    }

    #[test]
    fn queue_figures_add_up_per_region() {
        let slots = CopySlots::new(2);
        assert!(slots.try_acquire("r", &"a", "x"));
        slots.report_queue("r", &"a", 3);
        slots.report_queue("r", &"b", 2);
        let stats = slots.queue_stats()["r"];
        assert_eq!((stats.in_flight, stats.queued), (1, 5));
        slots.report_queue("r", &"a", 0);
        slots.forget(&"b");
        assert_eq!(slots.queue_stats()["r"].queued, 0);
        assert_eq!(slots.queue_stats()["r"].oldest_wait, Duration::ZERO);
    }

    #[test]
    fn a_freed_slot_goes_to_the_waiter_served_longest_ago() {
        let slots = CopySlots::new(2);
        assert!(slots.try_acquire("r", &"a", "a-0") && slots.try_acquire("r", &"a", "a-1"));
        assert!(!slots.try_acquire("r", &"a", "a-2"), "full: a waits too");
        assert!(!slots.try_acquire("r", &"b", "b-0"));
        // a's copies finish together: both hold nothing, b was never served.
        slots.release("r", &"a", "a-0");
        slots.release("r", &"a", "a-1");
        assert!(!slots.try_acquire("r", &"a", "a-2"), "b goes first");
        assert!(slots.try_acquire("r", &"b", "b-0"));
        assert!(slots.try_acquire("r", &"a", "a-2"), "then a: one each");
    }

    #[test]
    fn forgetting_an_object_frees_its_slots() {
        let slots = CopySlots::new(1);
        assert!(slots.try_acquire("r", &"a", "x"));
        assert!(!slots.try_acquire("r", &"b", "y"));
        assert_eq!(slots.forget(&"a"), vec!["b"]);
        assert!(slots.try_acquire("r", &"b", "y"));
    }
}
