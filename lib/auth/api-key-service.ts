// API keys. A key is `ty_<prefix>_<secret>`: the prefix finds the row, the sha256 of the whole key
// is compared in constant time. sha256 (not a slow password hash) is right here because keys are
// 256 bits of randomness, not something a person chose.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { Db } from "../db/prisma.ts";
import { NotFoundError } from "../errors.ts";

export type Principal = { kind: "admin" } | { kind: "tenant"; tenantId: string; keyId: string };

const sha256 = (s: string) => createHash("sha256").update(s).digest();
const KEY_PATTERN = /^ty_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

export interface ApiKeyView {
  id: string;
  tenant: string;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

export class ApiKeyService {
  private readonly adminHash: Buffer;

  constructor(private readonly db: Db, adminKey: string) {
    this.adminHash = sha256(adminKey);
  }

  async authenticate(token: string): Promise<Principal | null> {
    if (timingSafeEqual(sha256(token), this.adminHash)) return { kind: "admin" };
    const m = KEY_PATTERN.exec(token);
    if (!m) return null;
    const row = await this.db.apiKey.findUnique({ where: { prefix: m[1] } });
    if (!row || row.revokedAt) return null;
    if (!timingSafeEqual(sha256(token), Buffer.from(row.hash, "hex"))) return null;
    return { kind: "tenant", tenantId: row.tenantId, keyId: row.id };
  }

  /** Creates a key for a tenant (created on first use of its name). The key is returned once, here. */
  async create(tenantName: string, name: string): Promise<ApiKeyView & { key: string }> {
    const prefix = randomBytes(8).toString("hex");
    const key = `ty_${prefix}_${randomBytes(32).toString("base64url")}`;
    // One transaction: a key that cannot be stored must not leave a new tenant without one behind.
    const { tenant, row } = await this.db.$transaction(async (tx) => {
      // INSERT ... ON CONFLICT DO NOTHING, not upsert (a read, then an insert): two keys created at
      // once for a new tenant would both try to insert it, and one would fail on the unique name.
      await tx.tenant.createMany({ data: [{ id: randomUUID(), name: tenantName }], skipDuplicates: true });
      const tenant = await tx.tenant.findUniqueOrThrow({ where: { name: tenantName } });
      const row = await tx.apiKey.create({ data: { id: randomUUID(), tenantId: tenant.id, name, prefix, hash: sha256(key).toString("hex") } });
      return { tenant, row };
    });
    return { ...this.toView(row, tenant.name), key };
  }

  async list(tenantName?: string): Promise<ApiKeyView[]> {
    const rows = await this.db.apiKey.findMany({
      where: tenantName ? { tenant: { name: tenantName } } : {},
      include: { tenant: { select: { name: true } } },
      orderBy: { createdAt: "desc" },
      take: 1000,
    });
    return rows.map((r) => this.toView(r, r.tenant.name));
  }

  async revoke(id: string): Promise<ApiKeyView> {
    const row = await this.db.apiKey.findUnique({ where: { id }, include: { tenant: { select: { name: true } } } });
    if (!row) throw new NotFoundError("API key", id);
    const updated = row.revokedAt ? row : await this.db.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
    return this.toView(updated, row.tenant.name);
  }

  private toView(row: { id: string; name: string; prefix: string; createdAt: Date; revokedAt: Date | null }, tenant: string): ApiKeyView {
    return { id: row.id, tenant, name: row.name, prefix: row.prefix, createdAt: row.createdAt.toISOString(), revokedAt: row.revokedAt?.toISOString() ?? null };
  }
}
