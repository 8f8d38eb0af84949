/** Class lists and names: FER2013's seven emotions (in label-id order), FER+'s eight, the splits, and aliases. */

/** FER2013 emotion labels, in label-id order (0 angry ... 6 neutral): the FER2013 CSV's class list. */
export const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"] as const;
export type Emotion = typeof EMOTIONS[number];
/** FER2013's number of classes (its CSV loader's range of label ids). */
export const NUM_CLASSES = EMOTIONS.length;

/** FER+'s classes (Barsoum et al. 2016): FER2013's seven under their FER2013 names, then contempt. */
export const FERPLUS_CLASSES = [...EMOTIONS, "contempt"] as const;

/** The three FER2013 splits, as the `Usage` column names them. */
export const SPLITS = ["Training", "PublicTest", "PrivateTest"] as const;
export type Split = typeof SPLITS[number];

/** Other names of the classes, as datasets' folders spell them (CK+: anger, sadness; FER+: happiness). */
const CLASS_ALIASES: Record<string, string> = {
  anger: "angry",
  disgusted: "disgust",
  fearful: "fear",
  happiness: "happy",
  sadness: "sad",
  surprised: "surprise",
  contemptuous: "contempt",
};

/** A class name as this project spells it: lower case, aliases resolved ("Sadness" -> "sad"). */
export function className(name: string): string {
  const lower = name.trim().toLowerCase();
  return CLASS_ALIASES[lower] ?? lower;
}
