// The request and response shapes of the inference routes live with their protocols; this module
// names them for the routes.
export { tfModelMetadataSchema, tfModelStatusSchema, tfPredictRequestSchema as predictRequestSchema, tfPredictResponseSchema as predictResponseSchema } from "./protocols/tf-serving.ts";
export { inferErrorSchema, inferRequestSchema, inferResponseSchema, modelMetadataSchema, modelReadySchema, serverMetadataSchema } from "./protocols/kserve-v2.ts";
