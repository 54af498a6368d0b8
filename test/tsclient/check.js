// check.js drives the hosted platform's TypeScript API client
// (@ngrok/ngrok-api, MIT) against a Tollgate control plane with only its
// base URL changed, and reports every way our API differs from what the
// client expects: create, get, update, list (with paging), delete, and the
// error body, for each resource in RESOURCES.
//
// Environment: TOLLGATE_API_URL (base URL), TOLLGATE_API_KEY (an admin API
// key); optional TSCLIENT_RESOURCES=botUsers,apiKeys,... to run a subset.
// Exit status 0 when every check passed, 1 otherwise; the last line of
// output is a JSON summary {"passed": [...], "failed": [...]}.
'use strict';

const crypto = require('crypto');
const { Ngrok } = require('@ngrok/ngrok-api');

const baseUrl = (process.env.TOLLGATE_API_URL || '').replace(/\/+$/, '');
const apiToken = process.env.TOLLGATE_API_KEY || '';
if (!baseUrl || !apiToken) {
  console.error('check.js: set TOLLGATE_API_URL and TOLLGATE_API_KEY');
  process.exit(2);
}
const ngrok = new Ngrok({ apiToken, baseUrl });
const run = Date.now().toString(36);

// A mismatch between what the client got and what it expects.
class Mismatch extends Error {}

function expect(cond, what, got) {
  if (!cond) {
    throw new Mismatch(what + (got === undefined ? '' : ': got ' + JSON.stringify(got, mapReplacer)));
  }
}

function mapReplacer(_k, v) {
  return v instanceof Map ? Object.fromEntries(v) : v;
}

function describe(e) {
  if (e instanceof Mismatch) return e.message;
  if (e && e.errorCode) return `API error ${e.statusCode} ${e.errorCode}: ${e.msg}`;
  return String((e && e.stack) || e);
}

// checkObject checks the fields every object has: id with its prefix, uri
// under the base URL, created_at as RFC 3339 UTC.
function checkObject(o, coll, prefix) {
  expect(o && typeof o === 'object', 'the answer is an object', o);
  expect(typeof o.id === 'string' && o.id.startsWith(prefix) && o.id.length === prefix.length + 27,
    `id is ${prefix}<27 characters>`, o.id);
  expect(o.uri === `${baseUrl}/${coll}/${o.id}`, `uri is ${baseUrl}/${coll}/<id>`, o.uri);
  expect(typeof o.createdAt === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(o.createdAt) &&
    !Number.isNaN(Date.parse(o.createdAt)), 'created_at is RFC 3339 in UTC', o.createdAt);
}

// checkAPIError checks the error body the client turns into its Error:
// error_code, status_code, msg, details with operation_id.
function checkAPIError(e, status, what) {
  expect(e && !(e instanceof Mismatch), `${what}: an API error`, describe(e));
  expect(e.statusCode === status, `${what}: status_code ${status}`, e.statusCode);
  expect(typeof e.errorCode === 'string' && /^TG_\d+$/.test(e.errorCode), `${what}: error_code TG_<n>`, e.errorCode);
  expect(typeof e.msg === 'string' && e.msg.length > 0, `${what}: a msg`, e.msg);
  expect(e.details instanceof Map && /^op_/.test(e.details.get('operationId') || ''),
    `${what}: details.operation_id`, e.details);
}

async function expectError(promise, status, what) {
  let got;
  try {
    got = await promise;
  } catch (e) {
    checkAPIError(e, status, what);
    return e;
  }
  throw new Mismatch(`${what}: expected an API error ${status}, got success ${JSON.stringify(got)}`);
}

// remove deletes an object. The client parses the body of every answer as
// JSON, so on the documented empty 204 its delete() rejects with a
// SyntaxError (it does so against the hosted API too); that rejection is
// accepted here, and the object must then be gone.
async function remove(svc, id, what) {
  try {
    await svc.delete(id);
  } catch (e) {
    const emptyBody = e instanceof SyntaxError && /JSON/.test(e.message);
    expect(emptyBody, `${what}: delete answers 204 with no body`, describe(e));
  }
  await expectError(svc.get(id), 404, `${what}: get after delete`);
}

// sshPublicKey returns a new ed25519 public key as an authorized_keys line.
function sshPublicKey(comment) {
  const { publicKey } = crypto.generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

// keyPart drops the comment of an authorized_keys line.
function keyPart(line) {
  return String(line).split(/\s+/).slice(0, 2).join(' ');
}

// ipPolicyDep creates an IP policy for objects that refer to one.
async function ipPolicyDep() {
  const p = await ngrok.ipPolicies.create({ description: `ts policy ${run}` });
  return { ctx: { policyId: p.id }, cleanup: () => remove(ngrok.ipPolicies, p.id, 'IP policy') };
}

// eq compares JSON-shaped values.
function eq(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// RESOURCES: for each client service, how to create, update and check one
// object. deps() creates what the object needs (and returns a cleanup).
const RESOURCES = [
  {
    svc: 'botUsers', coll: 'bot_users', prefix: 'bot_',
    create: () => ({ name: `ts-bot-${run}` }),
    created: (o, a) => {
      expect(o.name === a.name, 'name as created', o.name);
      expect(o.active === true, 'active defaults to true', o.active);
    },
    update: (o) => ({ id: o.id, name: o.name + '-renamed', active: false }),
    updated: (o, u) => {
      expect(o.name === u.name, 'name as updated', o.name);
      expect(o.active === false, 'active as updated', o.active);
    },
  },
  {
    svc: 'apiKeys', coll: 'api_keys', prefix: 'ak_',
    deps: async () => {
      const bot = await ngrok.botUsers.create({ name: `ts-key-owner-${run}` });
      return { ctx: { ownerId: bot.id }, cleanup: () => remove(ngrok.botUsers, bot.id, 'owner bot user') };
    },
    create: (ctx) => ({ description: 'ts key', metadata: '{"by":"check.js"}', ownerId: ctx.ownerId }),
    created: (o, a) => {
      expect(typeof o.token === 'string' && o.token.length > 20, 'token shown at creation', o.token);
      expect(o.ownerId === a.ownerId, 'owner_id as created', o.ownerId);
      expect(o.description === a.description && o.metadata === a.metadata, 'description and metadata as created', o);
    },
    got: (o) => expect(o.token === null || o.token === undefined, 'token not shown after creation', o.token),
    update: (o) => ({ id: o.id, description: 'ts key 2', metadata: 'm2' }),
    updated: (o, u) => expect(o.description === u.description && o.metadata === u.metadata, 'description and metadata as updated', o),
  },
  {
    svc: 'credentials', coll: 'credentials', prefix: 'cr_',
    create: () => ({ description: 'ts authtoken', metadata: 'm', acl: ['bind:ts.example.com', 'bind:*.ts.example.com'] }),
    created: (o, a) => {
      expect(typeof o.token === 'string' && o.token.length > 20, 'token shown at creation', o.token);
      expect(eq(o.acl, a.acl), 'acl as created', o.acl);
      expect(typeof o.ownerId === 'string' && o.ownerId.length > 0, 'owner_id defaults to the caller', o.ownerId);
    },
    got: (o) => expect(o.token === null || o.token === undefined, 'token not shown after creation', o.token),
    update: (o) => ({ id: o.id, description: 'ts authtoken 2', acl: ['bind:other.example.com'] }),
    updated: (o, u) => expect(o.description === u.description && eq(o.acl, u.acl), 'description and acl as updated', o),
    badCreate: { acl: ['nonsense:rule'] },
  },
  {
    svc: 'sshCredentials', coll: 'ssh_credentials', prefix: 'sshcr_',
    create: (_ctx, i) => ({ description: 'ts ssh key', metadata: 'm', acl: ['bind:ssh.example.com'], publicKey: sshPublicKey(`ts-${run}-${i}`) }),
    created: (o, a) => {
      expect(keyPart(o.publicKey) === keyPart(a.publicKey), 'public_key as created', o.publicKey);
      expect(eq(o.acl, a.acl), 'acl as created', o.acl);
      expect(typeof o.ownerId === 'string' && o.ownerId.length > 0, 'owner_id defaults to the caller', o.ownerId);
    },
    update: (o) => ({ id: o.id, description: 'ts ssh key 2', acl: ['bind:other.example.com'] }),
    updated: (o, u) => expect(o.description === u.description && eq(o.acl, u.acl), 'description and acl as updated', o),
    badCreate: { publicKey: 'ssh-ed25519 not-base64' },
  },
  {
    svc: 'reservedDomains', coll: 'reserved_domains', prefix: 'rd_',
    create: (_ctx, i) => ({ domain: `ts-${run}-${i}.example.com`, region: 'us', description: 'ts domain', metadata: 'm' }),
    created: (o, a) => {
      expect(o.domain === a.domain && o.region === a.region, 'domain and region as created', o);
      expect(o.description === a.description && o.metadata === a.metadata, 'description and metadata as created', o);
    },
    update: (o) => ({ id: o.id, description: 'ts domain 2', metadata: 'm2' }),
    updated: (o, u) => expect(o.description === u.description && o.metadata === u.metadata, 'description and metadata as updated', o),
    badCreate: { domain: 'not a domain' },
  },
  {
    svc: 'reservedAddrs', coll: 'reserved_addrs', prefix: 'ra_',
    // The client's ReservedAddrCreate has no addr: the server assigns one.
    create: () => ({ region: 'us', description: 'ts addr', metadata: 'm' }),
    created: (o, a) => {
      expect(typeof o.addr === 'string' && /^[^:]+:\d+$/.test(o.addr), 'an assigned addr HOST:PORT', o.addr);
      expect(o.region === a.region && o.description === a.description, 'region and description as created', o);
    },
    update: (o) => ({ id: o.id, description: 'ts addr 2', metadata: 'm2' }),
    updated: (o, u) => expect(o.description === u.description && o.metadata === u.metadata, 'description and metadata as updated', o),
    badCreate: { region: 'mars' },
  },
  {
    svc: 'ipPolicies', coll: 'ip_policies', prefix: 'ipp_',
    create: () => ({ description: 'ts policy', metadata: 'm' }),
    created: (o, a) => expect(o.description === a.description && o.metadata === a.metadata, 'description and metadata as created', o),
    update: (o) => ({ id: o.id, description: 'ts policy 2', metadata: 'm2' }),
    updated: (o, u) => expect(o.description === u.description && o.metadata === u.metadata, 'description and metadata as updated', o),
  },
  {
    svc: 'ipPolicyRules', coll: 'ip_policy_rules', prefix: 'ipr_',
    deps: ipPolicyDep,
    create: (ctx, i) => ({ cidr: `10.${i}.0.0/16`, action: 'allow', ipPolicyId: ctx.policyId, description: 'ts rule', metadata: 'm' }),
    created: (o, a) => {
      expect(o.cidr === a.cidr && o.action === a.action, 'cidr and action as created', o);
      expect(o.ipPolicy && o.ipPolicy.id === a.ipPolicyId && o.ipPolicy.uri === `${baseUrl}/ip_policies/${a.ipPolicyId}`,
        'ip_policy is a Ref {id, uri} to the policy', o.ipPolicy);
    },
    update: (o) => ({ id: o.id, cidr: '192.168.0.0/24', description: 'ts rule 2' }),
    updated: (o, u) => expect(o.cidr === u.cidr && o.description === u.description, 'cidr and description as updated', o),
    badCreate: { cidr: '10.0.0.5/24' },
  },
  {
    svc: 'ipRestrictions', coll: 'ip_restrictions', prefix: 'ipx_',
    deps: ipPolicyDep,
    // Never enforced, and never of type api: the check must not lock
    // itself out.
    create: (ctx, i) => ({ type: ['dashboard', 'agent', 'endpoints'][i % 3], enforced: false, ipPolicyIds: [ctx.policyId], description: 'ts restriction' }),
    created: (o, a) => {
      expect(o.type === a.type && o.enforced === false, 'type and enforced as created', o);
      expect(Array.isArray(o.ipPolicies) && o.ipPolicies.length === 1 && o.ipPolicies[0].id === a.ipPolicyIds[0] &&
        o.ipPolicies[0].uri === `${baseUrl}/ip_policies/${a.ipPolicyIds[0]}`, 'ip_policies are Refs {id, uri}', o.ipPolicies);
    },
    update: (o, ctx) => ({ id: o.id, description: 'ts restriction 2', ipPolicyIds: [ctx.policyId] }),
    updated: (o, u) => expect(o.description === u.description && o.ipPolicies.length === 1, 'description as updated', o),
    badCreate: { type: 'everything' },
  },
  {
    svc: 'eventDestinations', coll: 'event_destinations', prefix: 'ed_',
    // The hosted platform's Kinesis target round-trips (no subscription
    // names it, so nothing is sent); the update switches to a NATS target.
    create: (_ctx, i) => ({ description: 'ts dest', metadata: 'm', format: 'JSON', target: { kinesis: {
      auth: { role: { roleArn: 'arn:aws:iam::123456789012:role/ts' } }, streamArn: `arn:aws:kinesis:us-east-1:123456789012:stream/ts-${i}` } } }),
    created: (o, a) => {
      expect(o.format === 'JSON' && o.description === a.description, 'format and description as created', o);
      expect(o.target && o.target.kinesis && o.target.kinesis.streamArn === a.target.kinesis.streamArn &&
        o.target.kinesis.auth.role.roleArn === a.target.kinesis.auth.role.roleArn, 'target.kinesis as created', o.target);
    },
    update: (o) => ({ id: o.id, description: 'ts dest 2', target: { nats: { url: 'nats://127.0.0.1:4222', subject: 'ts.events' } } }),
    updated: (o, u) => expect(o.description === u.description && o.target.nats && o.target.nats.subject === 'ts.events' && !o.target.kinesis,
      'description and target as updated', o),
    badCreate: { target: {} },
  },
  {
    svc: 'eventSubscriptions', coll: 'event_subscriptions', prefix: 'esb_',
    deps: eventDestinationDep,
    create: (ctx) => ({ description: 'ts sub', metadata: 'm', sources: [{ type: 'api_key_created.v0' }], destinationIds: [ctx.destId] }),
    created: (o, a) => {
      expect(o.description === a.description && o.metadata === a.metadata, 'description and metadata as created', o);
      expect(o.sources.length === 1 && o.sources[0].type === 'api_key_created.v0' &&
        o.sources[0].uri === `${baseUrl}/event_subscriptions/${o.id}/sources/api_key_created.v0`, 'sources [{type, uri}]', o.sources);
      expect(o.destinations.length === 1 && o.destinations[0].id === a.destinationIds[0] &&
        o.destinations[0].uri === `${baseUrl}/event_destinations/${a.destinationIds[0]}`, 'destinations are Refs {id, uri}', o.destinations);
    },
    update: (o) => ({ id: o.id, description: 'ts sub 2', sources: [{ type: 'credential_created.v0' }, { type: 'credential_deleted.v0' }] }),
    updated: (o, u) => expect(o.description === u.description && eq(o.sources.map((s) => s.type), u.sources.map((s) => s.type)),
      'description and sources as updated', o),
    badCreate: { sources: [{ type: 'no_such_event.v0' }] },
  },
  { svc: 'eventSources', custom: eventSourcesFlow },
];

// eventDestinationDep creates an event destination for subscriptions.
async function eventDestinationDep() {
  const d = await ngrok.eventDestinations.create({ description: `ts dest ${run}`, format: 'JSON',
    target: { nats: { url: 'nats://127.0.0.1:4222', subject: 'ts.events' } } });
  return { ctx: { destId: d.id }, cleanup: () => remove(ngrok.eventDestinations, d.id, 'event destination') };
}

// eventSourcesFlow runs the sources of one subscription through create
// (with a CEL filter and fields), get, list, update and delete, and checks
// that a filter that does not compile is a 400 that stores nothing.
async function eventSourcesFlow() {
  const { ctx, cleanup } = await eventDestinationDep();
  let sub;
  try {
    sub = await ngrok.eventSubscriptions.create({ description: 'ts sources', sources: [], destinationIds: [ctx.destId] });
    const svc = ngrok.eventSources;
    const filter = 'object.description.startsWith("ts")';
    const made = await svc.create({ subscriptionId: sub.id, type: 'api_key_created.v0', filter, fields: ['object.id', 'principal.id'] });
    expect(made.type === 'api_key_created.v0' && made.uri === `${baseUrl}/event_subscriptions/${sub.id}/sources/api_key_created.v0`,
      'source type and uri as created', made);
    expect(made.filter === filter && eq(made.fields, ['object.id', 'principal.id']), 'filter and fields as created', made);
    const got = await svc.get({ subscriptionId: sub.id, type: 'api_key_created.v0' });
    expect(got.filter === filter && got.type === made.type, 'get answers the source with its filter', got);
    const e = await expectError(svc.create({ subscriptionId: sub.id, type: 'api_key_deleted.v0', filter: 'object.description ==' }),
      400, 'a source with a filter that does not compile');
    expect(e.errorCode === 'TG_5410' && /Syntax error/.test(e.msg), 'the compiler\'s message in a TG_5410 error', e.msg);
    await expectError(svc.create({ subscriptionId: sub.id, type: 'no_such_event.v0' }), 400, 'a source of an unknown type');
    const list = await svc.list({ subscriptionId: sub.id });
    expect(list.sources.length === 1 && list.sources[0].type === 'api_key_created.v0', 'list has the one source stored', list);
    const upd = await svc.update({ subscriptionId: sub.id, type: 'api_key_created.v0', filter: 'true' });
    expect(upd.filter === 'true', 'filter as updated', upd);
    const again = await ngrok.eventSubscriptions.get(sub.id);
    expect(again.sources.length === 1 && again.sources[0].type === 'api_key_created.v0', 'the subscription lists the source', again.sources);
    try {
      await svc.delete({ subscriptionId: sub.id, type: 'api_key_created.v0' });
    } catch (err) {
      expect(err instanceof SyntaxError && /JSON/.test(err.message), 'delete answers 204 with no body', describe(err));
    }
    await expectError(svc.get({ subscriptionId: sub.id, type: 'api_key_created.v0' }), 404, 'get of a deleted source');
  } finally {
    if (sub) await remove(ngrok.eventSubscriptions, sub.id, 'event subscription');
    await cleanup();
  }
}

// exercise runs the whole life cycle of one resource.
async function exercise(r) {
  if (r.custom) return r.custom();
  const svc = ngrok[r.svc];
  let ctx = {};
  let cleanup = async () => {};
  if (r.deps) {
    ({ ctx, cleanup } = await r.deps());
  }
  const made = [];
  try {
    // create, three times, so that a list of limit 2 has two pages.
    for (let i = 0; i < 3; i++) {
      const arg = r.create(ctx, i);
      const o = await svc.create(arg);
      checkObject(o, r.coll, r.prefix);
      r.created(o, arg, ctx);
      made.push(o);
    }
    // get
    const g = await svc.get(made[0].id);
    checkObject(g, r.coll, r.prefix);
    expect(g.id === made[0].id && g.createdAt === made[0].createdAt, 'get answers the created object', g);
    if (r.got) r.got(g);
    // update (the client sends the id in the body as well as in the path)
    if (r.update) {
      const u = r.update(made[0], ctx);
      const o = await svc.update(u);
      checkObject(o, r.coll, r.prefix);
      expect(o.id === made[0].id, 'update answers the same object', o.id);
      r.updated(o, u);
      const g2 = await svc.get(made[0].id);
      r.updated(g2, u);
    }
    // list: the client pages with before_id from the last item while
    // next_page_uri is set; with limit 2 that takes at least two pages.
    const all = await svc.list(undefined, '2');
    const ids = all.map((o) => o.id);
    for (const o of made) {
      expect(ids.includes(o.id), `list (limit 2, paged) includes ${o.id}`, ids);
    }
    expect(new Set(ids).size === ids.length, 'list pages do not repeat objects', ids);
    const sorted = [...ids].sort().reverse();
    expect(eq(ids, sorted), 'list is newest first (descending IDs)', ids);
    const one = await svc.list();
    expect(one.length === all.length, 'list without a limit has the same objects', one.length);
    // errors
    await expectError(svc.get(r.prefix + '0'.repeat(27)), 404, 'get of a missing object');
    if (r.badCreate) {
      await expectError(svc.create({ ...r.create(ctx, 9), ...r.badCreate }), 400, 'create with an invalid field');
    }
    // delete
    while (made.length) {
      const o = made.pop();
      await remove(svc, o.id, `delete ${o.id}`);
    }
  } finally {
    for (const o of made) {
      try { await svc.delete(o.id); } catch (_) { /* best effort */ }
    }
    try { await cleanup(); } catch (_) { /* best effort: the first error matters */ }
  }
}

async function main() {
  const only = (process.env.TSCLIENT_RESOURCES || '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of only) {
    if (!RESOURCES.some((r) => r.svc === name)) {
      console.error(`check.js: unknown resource ${name}`);
      process.exit(2);
    }
  }
  const passed = [];
  const failed = [];
  // The error body, from an unauthenticated call.
  try {
    const bad = new Ngrok({ apiToken: 'not_a_key', baseUrl });
    await expectError(bad.botUsers.list(), 401, 'a bad API key');
    passed.push('errors');
  } catch (e) {
    console.log(`FAIL errors: ${describe(e)}`);
    failed.push('errors');
  }
  for (const r of RESOURCES) {
    if (only.length && !only.includes(r.svc)) continue;
    // A resource takes about 20 requests; a pause keeps the run under the
    // API's per-account rate limit (the client does not retry a 429).
    await new Promise((res) => setTimeout(res, 500));
    try {
      await exercise(r);
      console.log(`ok   ${r.svc}`);
      passed.push(r.svc);
    } catch (e) {
      console.log(`FAIL ${r.svc}: ${describe(e)}`);
      failed.push(r.svc);
    }
  }
  console.log(JSON.stringify({ passed, failed }));
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(describe(e));
  process.exit(1);
});
