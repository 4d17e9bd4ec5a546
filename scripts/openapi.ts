// `npm run openapi`: writes openapi/openapi.json from the routes' zod schemas.
import { writeFileSync } from "node:fs";
import { generateOpenApi } from "../services/openapi.ts";

writeFileSync(new URL("../openapi/openapi.json", import.meta.url), await generateOpenApi());
console.log("wrote openapi/openapi.json");
