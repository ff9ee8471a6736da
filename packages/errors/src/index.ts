export * from './catalogue.ts';
export * from './domicile-error.ts';
