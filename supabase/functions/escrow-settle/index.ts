// Edge function entry: wiring only; the handler lives beside it so the dev router can mount it.
import { defaultApp } from "../../../shared/app.ts";
import { handler } from "./handler.ts";

Deno.serve(handler(defaultApp()));
