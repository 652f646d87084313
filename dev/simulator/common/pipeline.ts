// The order in which every simulator's fetch() takes a request: its /_sim controls, else its
// API with the armed faults applied, else the gateway's "no such URL". Each simulator says what
// its controls and its API are (path tests, pipelines) and how it answers an injected error.
import { type FaultBook, type FaultStatus, withFaults } from "./faults.ts";

/** The path a simulator routes on: the URL's without trailing slashes ("/" at the least). */
export function simPath(url: URL): string {
  return url.pathname.replace(/\/+$/, "") || "/";
}

type Pipeline = (req: Request, url: URL, path: string) => Promise<Response>;

export interface Surfaces {
  faults: FaultBook;
  /** The gateway's own answer to an injected error_5xx fault. */
  serverError: (status: FaultStatus) => Response;
  control: { when: (path: string) => boolean; handle: Pipeline };
  api: { when: (path: string) => boolean; handle: Pipeline };
  notFound: (path: string) => Response;
}

export async function dispatch(
  o: Surfaces,
  req: Request,
  url = new URL(req.url),
  path = simPath(url),
): Promise<Response> {
  if (o.control.when(path)) return await o.control.handle(req, url, path);
  if (o.api.when(path)) {
    return await withFaults(o.faults, req, path, o.serverError, () => o.api.handle(req, url, path));
  }
  return o.notFound(path);
}
