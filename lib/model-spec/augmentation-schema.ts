// Image augmentation, as a training job declares it: which random transforms each training image
// gets, every one bounded. The worker applies them per batch (lib/engine/train/augment.ts); the
// API asks checkAugmentation before a job is queued.
import { z } from "zod";
import { ValidationError } from "../errors.ts";

const fraction = (max: number) => z.number().min(0, "must be >= 0").max(max, `must be <= ${max}`);

export const augmentationSchema = z
  .strictObject({
    flipHorizontal: z.boolean().optional().describe("Mirror left–right, half of the images."),
    flipVertical: z.boolean().optional().describe("Mirror top–bottom, half of the images."),
    rotation: z.number().min(0, "must be >= 0").max(180, "must be <= 180").optional().describe("Degrees: each image turns by an angle drawn from [−rotation, rotation]."),
    shift: fraction(0.5).optional().describe("Fraction of the width and height: each image moves by up to this much along each axis."),
    zoom: fraction(0.5).optional().describe("Each image is scaled by a factor drawn from [1 − zoom, 1 + zoom] about its centre (above 1 zooms in)."),
    crop: z.number().min(0.1, "must be >= 0.1").max(1, "must be <= 1").optional().describe("Random crop, resized back: a window whose sides are a fraction drawn from [crop, 1] of the image's, anywhere inside it."),
    padCrop: z.number().int("expected an integer").min(1, "must be >= 1").max(64, "must be <= 64").optional().describe("Pad and crop: pad by this many pixels (with `fill`) and cut the image's size back out at a random place, i.e. a shift by whole pixels."),
    brightness: fraction(1).optional().describe("Adds δ·(max − min of the input's values), δ drawn from [−brightness, brightness]; on 0–255 pixels 0.2 is up to ±51."),
    contrast: fraction(1).optional().describe("Scales each channel's distance from its mean by a factor drawn from [1 − contrast, 1 + contrast]."),
    fill: z.enum(["reflect", "nearest", "constant"]).optional().describe("What pixels moved in from outside the image show: its mirror image (default), its nearest edge, or 0."),
  })
  .meta({
    id: "Augmentation",
    description:
      "Random transforms of each training image, drawn anew every epoch from the job's seed (a resumed job augments exactly as an uninterrupted one). Validation rows are never augmented. Applies to [H, W, C] inputs; per-pixel labels ([H, W] masks) move with their image.",
  });
export type Augmentation = z.infer<typeof augmentationSchema>;

/** Whether any transform is switched on (an empty object, or all zeros, changes nothing). */
export const augments = (a: Augmentation | undefined): a is Augmentation =>
  !!a && !!(a.flipHorizontal || a.flipVertical || a.rotation || a.shift || a.zoom || (a.crop !== undefined && a.crop < 1) || a.padCrop || a.brightness || a.contrast);

/** An input of a dataset as augmentation sees it: images are [H, W, C]. */
export const isImageShape = (shape: readonly number[]) => shape.length === 3;

/**
 * The check before a job is queued: augmentation needs at least one image input ([H, W, C]); it
 * transforms those and leaves the others (an image's metadata) as they are. A 400 at `augmentation`.
 */
export function checkAugmentation(augmentation: Augmentation | undefined, inputs: readonly { name: string; shape: readonly number[] }[]): void {
  if (!augments(augmentation)) return;
  if (inputs.some((i) => isImageShape(i.shape))) return;
  const described = inputs.map((i) => `'${i.name}' [${i.shape.join(", ")}]`).join(", ");
  throw ValidationError.at("augmentation", `applies to images ([H, W, C] inputs); the dataset's inputs are ${described}`);
}
