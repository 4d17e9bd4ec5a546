// Toy images for per-pixel models (the zoo's unet and segnet): squares and circles on a dark
// background, each image with its mask of class ids. Grey levels are 0–255 like an uploaded
// image, so the default image preprocessing scales them to [0, 1].
import { defineBuiltin, rowsParam, seedParam, classificationDataset } from "./builtin-def.ts";
import { seededRandom } from "../../random/seeded-random.ts";

const CLASSES = ["background", "square", "circle"];
const BACKGROUND = 40;
const SHAPE = 200;

export const segmentation = defineBuiltin({
  name: "segmentation",
  title: "Squares and circles with their masks",
  description:
    "Grey images [size, size, 1] (levels 0–255) holding `shapes` squares or circles of the same brightness, and per image a mask [size, size] of class ids: 0 background, 1 square, 2 circle. " +
    "Each shape is a square or a circle at random, of half-side or radius between size/8 and size/4, placed wholly inside the image; a later shape covers an earlier one. " +
    "Gaussian noise of standard deviation noise·255 is added to every pixel (then rounded and clipped to 0–255), so only the outline tells the classes apart. " +
    "Train with the zoo's unet or segnet at inputShape=size,size,1 and classes=3.",
  type: "generator",
  source: "synthetic: random squares and circles and their per-pixel masks",
  licence: "none needed (generated)",
  task: "classification",
  kind: "image",
  params: {
    rows: rowsParam(1, 10_000, 200, "Images to generate."),
    size: { type: "integer", min: 8, max: 128, default: 32, description: "Height and width of each image." },
    shapes: { type: "integer", min: 1, max: 4, default: 1, description: "Shapes drawn in each image." },
    noise: { type: "number", min: 0, max: 1, default: 0.05, description: "Standard deviation of the pixel noise, as a fraction of the 0–255 range." },
    seed: seedParam,
  },
  shape: ({ rows, size }) => ({ rows, inputShape: [size, size, 1], targetShape: [size, size], classes: CLASSES }),
  build(name, { rows, size, shapes, noise, seed }) {
    const random = seededRandom(seed);
    const pixels = size * size;
    const features = new Float32Array(rows * pixels);
    const targets = new Float32Array(rows * pixels);
    const minRadius = Math.max(1, size / 8);
    const maxRadius = size / 4;
    for (let i = 0; i < rows; i++) {
      const mask = targets.subarray(i * pixels, (i + 1) * pixels);
      for (let s = 0; s < shapes; s++) {
        const kind = 1 + random.int(2);
        const radius = random.between(minRadius, maxRadius);
        const cx = random.between(radius, size - radius);
        const cy = random.between(radius, size - radius);
        // Only the shape's bounding box can be inside it.
        for (let y = Math.max(0, Math.floor(cy - radius)); y < Math.min(size, Math.ceil(cy + radius)); y++) {
          for (let x = Math.max(0, Math.floor(cx - radius)); x < Math.min(size, Math.ceil(cx + radius)); x++) {
            // Pixel centres, so that a shape is symmetric about its centre.
            const dx = x + 0.5 - cx;
            const dy = y + 0.5 - cy;
            const inside = kind === 1 ? Math.abs(dx) <= radius && Math.abs(dy) <= radius : dx * dx + dy * dy <= radius * radius;
            if (inside) mask[y * size + x] = kind;
          }
        }
      }
      for (let p = 0; p < pixels; p++) {
        const level = (mask[p] === 0 ? BACKGROUND : SHAPE) + (noise > 0 ? noise * 255 * random.gaussian() : 0);
        features[i * pixels + p] = Math.min(255, Math.max(0, Math.round(level)));
      }
    }
    return classificationDataset({ name, rows, inputShape: [size, size, 1], kind: "image", classes: CLASSES, targetShape: [size, size], features, targets });
  },
});
