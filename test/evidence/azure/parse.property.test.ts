// The Azure parsers (HCL report, runtime data JSON, evidence bundles, TDREPORT) and the verifier
// on arbitrary and mutated input: a value or a CofferError, never another exception, never a hang.
import { test } from 'node:test';
import fc from 'fast-check';
import { parseCertificates } from '../../../src/pki/certificate.js';
import { parseAzureEvidence, parseAzureVtpmQuote, parseHclReport, parseRuntimeData, parseTdReportStruct, verifyAzureEvidence } from '../../../src/evidence/azure/index.js';
import { mutated, valueOrCoffer } from '../nitro/property.js';
import { vec } from '../nitro/vectors.js';

const S = 'azure-cvm/trustee-az-snp-vtpm/';
const HCLS = [vec(`${S}hcl-report.bin`), vec('azure-cvm/trustee-az-tdx-vtpm/hcl-report.bin')];
const VCEK = parseCertificates(vec(`${S}vcek.pem`));
const QUOTE = parseAzureVtpmQuote(JSON.parse(vec(`${S}tpm-quote-v1.json`).toString('utf8')) as unknown);
const AT = new Date('2025-06-01T00:00:00Z');

test('parseHclReport / parseTdReportStruct / parseRuntimeData: arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2700 }), (b) => {
      valueOrCoffer('hcl', () => parseHclReport(b));
      valueOrCoffer('tdreport', () => parseTdReportStruct(b));
      valueOrCoffer('runtime', () => parseRuntimeData(b));
    }),
    { numRuns: 300 },
  );
});

test('the HCL report and the whole verifier on mutated real reports', () => {
  fc.assert(
    fc.property(mutated(HCLS), (b) => {
      valueOrCoffer('hcl', () => parseHclReport(b));
      valueOrCoffer('verify', () => verifyAzureEvidence({ hclReport: b, tpmQuote: QUOTE, certificates: VCEK }, { at: AT, nonce: Buffer.from('challenge') }));
    }),
    { numRuns: 150 },
  );
});

test('parseAzureEvidence / parseAzureVtpmQuote / parseRuntimeData: arbitrary JSON', () => {
  fc.assert(
    fc.property(fc.json(), fc.jsonValue(), (text, value) => {
      valueOrCoffer('evidence', () => parseAzureEvidence(text));
      valueOrCoffer('quote', () => parseAzureVtpmQuote(value));
      valueOrCoffer('runtime', () => parseRuntimeData(Buffer.from(text)));
    }),
    { numRuns: 300 },
  );
});
