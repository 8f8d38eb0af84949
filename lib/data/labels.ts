/** FER2013 emotion labels, in label-id order (0 angry ... 6 neutral). */
export const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"] as const;
export type Emotion = typeof EMOTIONS[number];
export const NUM_CLASSES = EMOTIONS.length;

/** The three FER2013 splits, as the `Usage` column names them. */
export const SPLITS = ["Training", "PublicTest", "PrivateTest"] as const;
export type Split = typeof SPLITS[number];
