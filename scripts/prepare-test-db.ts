import { prepareTemplate } from "../test/helpers/db.ts";

await prepareTemplate();
