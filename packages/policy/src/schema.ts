/**
 * JSON schema of the policy file's shape. It checks structure only (types,
 * unknown keys, enumerations); names and cross-references are checked in
 * `validate.ts`, where the messages can name the regions involved.
 * `x-expected` says, in words, what a key must hold (used in type errors).
 */
export const POLICY_SCHEMA = {
  type: 'object',
  'x-expected': 'a mapping with version, regions, residencies and tenants',
  additionalProperties: false,
  required: ['version', 'regions', 'residencies'],
  properties: {
    version: { type: 'integer', 'x-expected': 'the number 1', const: 1 },
    regions: {
      type: 'object',
      'x-expected': 'a mapping of region names to { jurisdiction }',
      minProperties: 1,
      'x-empty': 'at least one region must be defined',
      additionalProperties: {
        type: 'object',
        'x-expected': 'a mapping such as { jurisdiction: eu }',
        additionalProperties: false,
        required: ['jurisdiction'],
        properties: {
          jurisdiction: { type: 'string', 'x-expected': 'a label such as eu or us', minLength: 1 },
        },
      },
    },
    residencies: {
      type: 'object',
      'x-expected': 'a mapping of residency names to their rules',
      minProperties: 1,
      'x-empty': 'at least one residency must be defined',
      additionalProperties: {
        type: 'object',
        'x-expected': 'a mapping with regions (and optionally default, transit, backups, purgeAfterMove)',
        additionalProperties: false,
        required: ['regions'],
        properties: {
          regions: {
            type: ['array', 'string'],
            'x-expected': 'a list of region names or "*"',
            minItems: 1,
            'x-empty': 'must list at least one region (or be "*" for every region)',
            items: { type: 'string', 'x-expected': 'a region name' },
          },
          default: { type: 'string', 'x-expected': 'a region name' },
          transit: { type: 'string', 'x-expected': 'redirect or proxy', enum: ['redirect', 'proxy'] },
          backups: { type: 'string', 'x-expected': 'same-region', enum: ['same-region'] },
          purgeAfterMove: { type: 'boolean', 'x-expected': 'true or false' },
        },
      },
    },
    tenants: {
      type: ['object', 'null'],
      'x-expected': 'a mapping of tenant ids to { residency, pin }',
      additionalProperties: {
        type: 'object',
        'x-expected': 'a mapping such as { residency: eu, pin: eu-central }',
        additionalProperties: false,
        required: ['residency'],
        properties: {
          residency: { type: 'string', 'x-expected': 'a residency name' },
          pin: { type: 'string', 'x-expected': 'a region name' },
        },
      },
    },
  },
} as const;
