//! A client-side token bucket, so thousands of schedules due at once cannot
//! flood the account's FSx API quota (AWS throttles per account and Region).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Allows `rate` requests per second on average and bursts of up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket; `burst` is at least one request.
    ///
    /// # Panics
    /// If `rate_per_second` is not positive (configuration is validated before this).
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        assert!(rate_per_second > 0.0, "rate must be positive");
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_second,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Waits until a request may be sent. Waiters are served in arrival order
    /// because the lock is held while sleeping (tokio's mutex is fair).
    pub async fn acquire(&self) {
        let mut bucket = self.state.lock().await;
        let now = Instant::now();
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.refilled_at).as_secs_f64() * self.rate)
            .min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate);
            tokio::time::sleep(wait).await;
            bucket.tokens = 1.0;
            bucket.refilled_at = Instant::now();
        }
        bucket.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let bucket = TokenBucket::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            bucket.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(999) && elapsed <= Duration::from_millis(1001),
            "10 more at 10/s take one second, took {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_burst_only() {
        let bucket = TokenBucket::new(1.0, 2);
        bucket.acquire().await;
        bucket.acquire().await;
        tokio::time::sleep(Duration::from_secs(100)).await;
        let start = Instant::now();
        bucket.acquire().await;
        bucket.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.acquire().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "the third waits: burst is 2"
        );
    }
}
