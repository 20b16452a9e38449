/** hosts a module adds to `myself` (the domain module's register_myself): consulted by the SIP worker's check */
export const myself: { extra: ((host: string) => boolean) | null } = { extra: null };
