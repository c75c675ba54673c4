//! The pieces the screens are made of, one file each. They read [`crate::model`] signals and
//! call [`crate::call::Call`]; browser APIs only in their effects and event handlers.

mod badges;
mod chat;
mod device_picker;
mod participants;
mod stats_panel;
mod tile;
mod video;

pub use badges::Badges;
pub use chat::ChatPanel;
pub use device_picker::DevicePicker;
pub use participants::Participants;
pub use stats_panel::StatsPanel;
pub use tile::RemoteView;
pub use video::StreamVideo;
