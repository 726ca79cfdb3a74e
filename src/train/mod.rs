//! The training core's optimizer side: AdamW over the flat parameter buffer,
//! global grad-norm clipping, and learning-rate schedules. Dataset-facing
//! trainers (pretrain, SFT, reward, PPO) build on these.

pub mod adamw;
pub mod checkpoint;
pub mod ppo;
pub mod pretrain;
pub mod schedule;
pub mod seq;
pub mod verify;

pub use adamw::{AdamW, AdamWConfig, grad_norm};
pub use schedule::{Schedule, ScheduleKind};
