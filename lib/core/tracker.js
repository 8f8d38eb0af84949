// Faces followed through a video, shared by Deno (lib/vision/video.ts) and the browser page like
// face_pipeline.js: each frame's detections are matched to the tracks of the frames before by the overlap of
// their boxes (IoU), so a face keeps its id while it stays; each track's probabilities are smoothed over
// time by an exponential moving average whose time constant is in seconds (so the smoothing does not depend
// on the frame rate). Plain JavaScript; its one import is face_pipeline.js's box overlap and probability map.
import { iou, probabilityMap } from "./face_pipeline.js";

/** Tracker settings. */
export const TRACK_SETTINGS = Object.freeze({
  /** Least overlap (intersection over union) for a detection to continue a track. */
  minIou: 0.3,
  /**
   * A track ends once a detection has missed it and it has gone unseen for this many seconds (so on a slow
   * device, or a video sampled sparsely, where detections are further apart than this, a face that stays keeps
   * its id).
   */
  maxMissingSeconds: 1,
  /** Time constant of the probability smoothing, in seconds (0: no smoothing). */
  timeConstant: 0.5,
  /** Live video: frames between detections while faces are followed (every frame while none is). */
  detectEvery: 5,
});

/**
 * The exponential moving average of a track's probabilities: `previous`
 * (smoothed, at `dt` seconds before) moved toward `current` by
 * 1 - exp(-dt / timeConstant).
 * @param {number[] | undefined} previous
 * @param {number[]} current
 * @param {number} dt
 * @param {number} timeConstant
 * @returns {number[]}
 */
export function smoothProbabilities(previous, current, dt, timeConstant) {
  if (!previous || timeConstant <= 0) return [...current];
  const alpha = 1 - Math.exp(-Math.max(dt, 0) / timeConstant);
  return current.map((p, k) => previous[k] + alpha * (p - previous[k]));
}

/**
 * @typedef {{ id: number; box: number[]; lastSeen: number; missed: boolean; smoothed?: number[]; smoothedAt?: number }} Track
 */

/**
 * Faces followed from frame to frame: stable ids by box overlap, smoothed probabilities.
 * @template {{ box: number[] }} [F={ box: number[] }] a detection's face
 */
export class FaceTracker {
  /** @param {{ minIou?: number; maxMissingSeconds?: number; timeConstant?: number; detectEvery?: number }} [settings] */
  constructor(settings = {}) {
    this.settings = { ...TRACK_SETTINGS, ...settings };
    /** @type {Track[]} */
    this.tracks = [];
    this.nextId = 1;
    /** @type {number[]} the track ids the last detection found */
    this.following = [];
    /** @type {F[]} the faces the last detection found, in `following`'s order */
    this.faces = [];
  }

  /**
   * Live video's policy: whether frame `frame` (0-based) runs the detector,
   * every detectEvery frames, or every frame while no face is followed.
   * @param {number} frame
   * @returns {boolean}
   */
  shouldDetect(frame) {
    return frame % this.settings.detectEvery === 0 || this.following.length === 0;
  }

  /**
   * A detection's faces at `time` (each with its `box`): their track ids
   * (`assign`), followed until the next detection.
   * @param {number} time
   * @param {F[]} faces
   * @returns {number[]}
   */
  detected(time, faces) {
    this.following = this.assign(time, faces.map((f) => f.box));
    this.faces = faces;
    return this.following;
  }

  /**
   * The faces the last detection found, as it found them, with their track
   * ids (frames between detections).
   * @returns {(F & { id: number })[]}
   */
  followed() {
    return this.faces.map((face, i) => ({ ...face, id: this.following[i] }));
  }

  /**
   * Match a frame's face boxes (at `time` seconds) to the live tracks, best
   * overlaps first; an unmatched box starts a track, and tracks a detection
   * has missed that are unseen for maxMissingSeconds end. Returns each box's
   * track id, in the boxes' order.
   * @param {number} time
   * @param {number[][]} boxes
   * @returns {number[]}
   */
  assign(time, boxes) {
    this.tracks = this.tracks.filter((t) => !t.missed || time - t.lastSeen <= this.settings.maxMissingSeconds);
    const pairs = [];
    boxes.forEach((box, b) =>
      this.tracks.forEach((track, t) => {
        const overlap = iou(box, track.box);
        if (overlap >= this.settings.minIou) pairs.push({ b, t, overlap });
      })
    );
    pairs.sort((x, y) => y.overlap - x.overlap);
    const ids = new Array(boxes.length).fill(0), usedTracks = new Set();
    for (const { b, t } of pairs) {
      if (ids[b] || usedTracks.has(t)) continue;
      ids[b] = this.tracks[t].id;
      usedTracks.add(t);
      Object.assign(this.tracks[t], { box: boxes[b], lastSeen: time });
    }
    this.tracks.forEach((track, t) => track.missed = !usedTracks.has(t)); // whether this detection missed it
    boxes.forEach((box, b) => {
      if (ids[b]) return;
      ids[b] = this.nextId++;
      this.tracks.push({ id: ids[b], box, lastSeen: time, missed: false });
    });
    return ids;
  }

  /**
   * The track's probabilities at `time` smoothed with its earlier ones.
   * @param {number} id
   * @param {number} time
   * @param {number[]} probabilities
   * @returns {number[]}
   */
  smooth(id, time, probabilities) {
    const track = this.tracks.find((t) => t.id === id);
    if (!track) return [...probabilities];
    const dt = track.smoothedAt === undefined ? 0 : time - track.smoothedAt;
    track.smoothed = smoothProbabilities(track.smoothed, probabilities, dt, this.settings.timeConstant);
    track.smoothedAt = time;
    return track.smoothed;
  }
}

/**
 * A frame's faces at `time` (seconds) followed by `tracker`: each with its
 * track id and its probabilities smoothed over time. `predict VIDEO` and the
 * package's `tracker()` (Deno and the browser) run this.
 * @template {{ box: number[]; probabilities: Record<string, number> }} F
 * @param {FaceTracker<any>} tracker
 * @param {number} time
 * @param {F[]} faces
 * @param {readonly string[]} labels
 * @returns {(F & { track: number; smoothed: Record<string, number> })[]}
 */
export function trackFaces(tracker, time, faces, labels) {
  const ids = tracker.assign(time, faces.map((f) => f.box));
  return faces.map((face, i) => ({
    ...face,
    track: ids[i],
    smoothed: probabilityMap(labels, tracker.smooth(ids[i], time, labels.map((l) => face.probabilities[l]))),
  }));
}
