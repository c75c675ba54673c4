//! Camera and microphone access through `navigator.mediaDevices` (browser only).

use crate::model::Device;
use crate::status::MediaProblem;
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{DomException, MediaDeviceInfo, MediaDeviceKind, MediaDevices, MediaStream, MediaStreamTrack};

/// The video size asked for: enough for a tile, modest for the CPU and the uplink. Through the
/// SFU the camera is also sent at half and a quarter of this width.
pub const IDEAL_WIDTH: u32 = 640;
const IDEAL_HEIGHT: u32 = 480;

/// `navigator.mediaDevices`, or `Insecure` where the page may not have it.
pub fn media_devices() -> Result<MediaDevices, MediaProblem> {
    let navigator = web_sys::window().ok_or(MediaProblem::Insecure)?.navigator();
    // `mediaDevices` is undefined outside secure contexts; web-sys would hand back a bogus object.
    let devices = Reflect::get(&navigator, &"mediaDevices".into()).unwrap_or(JsValue::UNDEFINED);
    if devices.is_undefined() || devices.is_null() {
        return Err(MediaProblem::Insecure);
    }
    Ok(devices.unchecked_into())
}

/// Builds a plain JS object from key/value pairs.
fn object(entries: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (key, value) in entries {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&obj, &JsValue::from_str(key), value);
    }
    obj.into()
}

fn video_constraints(device_id: Option<&str>) -> JsValue {
    let mut entries = vec![
        ("width", object(&[("ideal", IDEAL_WIDTH.into())])),
        ("height", object(&[("ideal", IDEAL_HEIGHT.into())])),
    ];
    if let Some(id) = device_id {
        entries.push(("deviceId", object(&[("exact", id.into())])));
    }
    object(&entries)
}

fn to_problem(err: JsValue) -> MediaProblem {
    match err.dyn_ref::<DomException>() {
        Some(e) => MediaProblem::from_dom_exception(&e.name(), &e.message()),
        None => MediaProblem::Other(format!("{err:?}")),
    }
}

async fn get_user_media(constraints: JsValue) -> Result<MediaStream, MediaProblem> {
    let devices = media_devices()?;
    let constraints: web_sys::MediaStreamConstraints = constraints.unchecked_into();
    let promise = devices.get_user_media_with_constraints(&constraints).map_err(to_problem)?;
    let stream = JsFuture::from(promise).await.map_err(to_problem)?;
    Ok(stream.unchecked_into())
}

/// Opens a microphone and a camera: exactly the given ones if `exact` (a person just picked
/// them), else the given ones if they are there and the defaults otherwise (remembered choices).
pub async fn open_camera_and_mic(
    camera: Option<&str>,
    microphone: Option<&str>,
    exact: bool,
) -> Result<MediaStream, MediaProblem> {
    // (Chromium does not honour an `ideal` deviceId: ask for it exactly, then for the defaults.)
    let chosen = open_devices(camera, microphone).await;
    match chosen {
        Err(MediaProblem::Unavailable | MediaProblem::NotFound)
            if !exact && (camera.is_some() || microphone.is_some()) =>
        {
            open_devices(None, None).await
        }
        other => other,
    }
}

async fn open_devices(camera: Option<&str>, microphone: Option<&str>) -> Result<MediaStream, MediaProblem> {
    let how = "exact";
    let audio = match microphone {
        Some(id) => object(&[("deviceId", object(&[(how, id.into())]))]),
        None => true.into(),
    };
    let mut video = vec![
        ("width", object(&[("ideal", IDEAL_WIDTH.into())])),
        ("height", object(&[("ideal", IDEAL_HEIGHT.into())])),
    ];
    if let Some(id) = camera {
        video.push(("deviceId", object(&[(how, id.into())])));
    }
    get_user_media(object(&[("audio", audio), ("video", object(&video))])).await
}

/// Asks the person to pick a screen, window or tab to share; its video track, hinted as detail
/// (sharp text over smooth motion). At most 15 frames a second and 1280 pixels wide: enough for
/// slides and code, modest for a mesh.
pub async fn open_screen() -> Result<MediaStreamTrack, MediaProblem> {
    let devices = media_devices()?;
    let video = object(&[("frameRate", object(&[("max", 15.into())])), ("width", object(&[("max", 1280.into())]))]);
    let constraints = object(&[("video", video), ("audio", false.into())]);
    let method = Reflect::get(&devices, &"getDisplayMedia".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| MediaProblem::Other("this browser cannot share the screen".into()))?;
    let promise: js_sys::Promise = method.call1(&devices, &constraints).map_err(to_problem)?.unchecked_into();
    let stream: MediaStream = JsFuture::from(promise).await.map_err(to_problem)?.unchecked_into();
    let track = first_track(&stream.get_video_tracks())
        .ok_or_else(|| MediaProblem::Other("the screen capture gave no video".into()))?;
    let _ = Reflect::set(&track, &"contentHint".into(), &"detail".into());
    Ok(track)
}

/// Opens exactly the camera `device_id`, video only.
pub async fn open_camera(device_id: &str) -> Result<MediaStreamTrack, MediaProblem> {
    let stream = get_user_media(object(&[("video", video_constraints(Some(device_id)))])).await?;
    first_track(&stream.get_video_tracks()).ok_or_else(|| MediaProblem::Other("the camera gave no video track".into()))
}

/// The devices the browser lists (labels appear once access was granted).
#[derive(Debug, Default)]
pub struct Devices {
    /// Cameras.
    pub cameras: Vec<Device>,
    /// Microphones.
    pub microphones: Vec<Device>,
    /// Sound outputs; empty where pages cannot pick one (no `setSinkId`).
    pub speakers: Vec<Device>,
}

/// Lists cameras, microphones and sound outputs.
pub async fn list_devices() -> Devices {
    let mut found = Devices::default();
    let Ok(devices) = media_devices() else { return found };
    let Ok(promise) = devices.enumerate_devices() else { return found };
    let Ok(list) = JsFuture::from(promise).await else { return found };
    let list: Array = list.unchecked_into();
    let can_pick_speaker = web_sys::window()
        .and_then(|w| Reflect::get(&w, &"HTMLMediaElement".into()).ok())
        .and_then(|c| Reflect::get(&c, &"prototype".into()).ok())
        .is_some_and(|p| Reflect::has(&p, &"setSinkId".into()).unwrap_or(false));
    for info in list.iter() {
        let info: MediaDeviceInfo = info.unchecked_into();
        let (into, noun) = match info.kind() {
            MediaDeviceKind::Videoinput => (&mut found.cameras, "Camera"),
            MediaDeviceKind::Audioinput => (&mut found.microphones, "Microphone"),
            MediaDeviceKind::Audiooutput if can_pick_speaker => (&mut found.speakers, "Speaker"),
            _ => continue,
        };
        let label = match info.label() {
            label if label.is_empty() => format!("{noun} {}", into.len() + 1),
            label => label,
        };
        into.push(Device { id: info.device_id(), label });
    }
    found
}

/// Opens exactly the microphone `device_id`, audio only.
pub async fn open_microphone(device_id: &str) -> Result<MediaStreamTrack, MediaProblem> {
    let stream =
        get_user_media(object(&[("audio", object(&[("deviceId", object(&[("exact", device_id.into())]))]))])).await?;
    first_track(&stream.get_audio_tracks())
        .ok_or_else(|| MediaProblem::Other("the microphone gave no audio track".into()))
}

/// The first track of an array of tracks.
pub fn first_track(tracks: &Array) -> Option<MediaStreamTrack> {
    tracks.iter().next().map(JsCast::unchecked_into)
}

/// Every track of `stream`.
pub fn tracks(stream: &MediaStream) -> impl Iterator<Item = MediaStreamTrack> {
    stream.get_tracks().iter().map(JsCast::unchecked_into).collect::<Vec<_>>().into_iter()
}

/// The `deviceId` a track was opened with.
pub fn device_id_of(track: &MediaStreamTrack) -> Option<String> {
    track.get_settings().get_device_id()
}

/// Stops every track of `stream`, releasing the camera and microphone.
pub fn stop_all(stream: &MediaStream) {
    for track in tracks(stream) {
        track.stop();
    }
}
